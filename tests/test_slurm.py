"""The slurm profile on a real one-node SLURM (scripts/slurm/start.sh), not a mock.

One run of the embedded default through ``--profile profiles/slurm``, during which the first
catalogue job is killed with scancel. Checked: the run completes; every rule ran inside a SLURM
job (sacct, and each job's own log); the killed job was resubmitted with more memory; only the GPU
rule got a GPU; and the outputs are byte for byte those of a local run.

A second run, with ``source: pexels`` against the loopback server and a canary key, checks that
the key reaches no disk: SLURM's state, spool and logs, the accounting database, job logs,
``.snakemake/`` and the outputs.

Skipped, with the reason, only where this machine cannot run the daemons (not root, no apt).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import BIN, REPO, neutral_table, only_tasks, snakemake
from senorita.video import read_frames

pytestmark = pytest.mark.slow

START = REPO / "scripts" / "slurm" / "start.sh"
STOP = REPO / "scripts" / "slurm" / "stop.sh"
ACCOUNT = "senorita"
PARTITION = "debug"
RUN_LIMIT_S = 600  # the run takes about 3 minutes on 2 cores

# The embedded default cut down to one operator task and one model (GPU) task, without captions
# or the WebDataset export: every kind of rule and resource, in few enough SLURM jobs for CI.
SLURM_CONFIG = {
    "tasks": only_tasks("deblur", "depth_detection"),
    "captions": {"enabled": False},
    "export": {"webdataset": False},
}
GPU_RULES = {
    "rule_device_report",
    "rule_dedup",
    "rule_control_maps",
    "rule_filter_scores",
    "rule_judge_scores",
}
# Files that describe the run (its provenance, report and card name times, hosts and run ids)
# rather than its data.
RUN_LEVEL = ("dataset/README.md", "results/report/", "results/provenance/")
# torch.save writes a random serialization id into each checkpoint: these can only be present.
CHECKPOINTS = ("results/models/",)
# Made by torch models on CPU: a job's thread count can change float sums in the last bits, so
# their tables compare within a float tolerance and their videos by decoded content.
MODEL_MADE = (
    "results/control/",
    "results/filters/",
    "results/dedup/",
    "dataset/depth_detection/",
)


def _same(name: str, local: object, slurm: object) -> bool:
    """One output of the SLURM run against the same output of a local run of the same config:
    tables by content (floats within tolerance, same rows), videos byte for byte or, for the
    model-made ones, by frame count, size and decoded pixels within tolerance."""
    if name.startswith(CHECKPOINTS):
        return True
    if isinstance(local, pd.DataFrame):
        try:
            pd.testing.assert_frame_equal(local, slurm, check_exact=False, rtol=1e-3, atol=1e-4)
        except AssertionError:
            return False
        return True
    if local.read_bytes() == slurm.read_bytes():
        return True
    if name.startswith(MODEL_MADE) and name.endswith(".npz"):  # dedup's cached signatures
        a, b = np.load(local), np.load(slurm)
        return a.files == b.files and all(
            np.allclose(a[k], b[k], rtol=1e-3, atol=1e-4) if a[k].dtype.kind == "f" else
            np.array_equal(a[k], b[k])
            for k in a.files
        )  # fmt: skip
    if name.startswith(MODEL_MADE) and name.endswith(".mp4"):
        a, b = read_frames(local).astype(np.int16), read_frames(slurm).astype(np.int16)
        return a.shape == b.shape and float(np.abs(a - b).mean()) < 1.0
    return False


def _cluster_up() -> bool:
    if shutil.which("scontrol") is None:
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    return ping.returncode == 0 and "UP" in ping.stdout


def _stop() -> None:
    proc = subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=300)
    print(proc.stderr)


@pytest.fixture(scope="module")
def slurm_cluster() -> dict[str, str]:
    """A running one-node cluster; stopped afterwards unless it was running before."""
    was_up = _cluster_up()
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600)
    if proc.returncode == 77:
        reason = proc.stderr.strip().splitlines()[-1]
        print(reason)
        pytest.skip(reason)
    try:
        if proc.returncode != 0:
            pytest.fail(f"start.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        print(f"cluster started in {time.monotonic() - t0:.0f}s: {proc.stderr.strip()}")
        cpus = subprocess.run(
            ["sinfo", "-h", "-N", "-n", "localhost", "-o", "%c"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[0]
        # Every core, whatever OMP_NUM_THREADS this process has (xdist workers set it to their
        # share, and nproc honours it: a 1-CPU node left the 2-CPU jobs pending forever).
        assert int(cpus) == len(os.sched_getaffinity(0)), f"the node has {cpus} CPUs"
        yield {"cpus": cpus}
    finally:
        if not was_up:
            _stop()


def _expected_jobs(tmp: Path) -> Counter:
    """Jobs per rule of the test's DAG but the `all` target, from a dry run."""
    proc = snakemake(tmp, "-n", "all", config=SLURM_CONFIG)
    table = proc.stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    counts = Counter()
    for line in table.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "all":
            counts[parts[0]] = int(parts[1])
    assert counts, proc.stdout
    return counts


def _target_jobs(slurm_log: Path) -> set[str]:
    """The Snakemake jobs a SLURM job was given (its --target-jobs), wildcards sorted."""
    text = slurm_log.read_text()
    match = re.search(r"--target-jobs (.*?) --", text)
    assert match, f"{slurm_log} names no target jobs"
    jobs = set()
    for token in match.group(1).split():
        rule, _, wildcards = token.partition(":")
        jobs.add(f"{rule}:{','.join(sorted(wildcards.split(','))) if wildcards else ''}")
    return jobs


def _outputs(root: Path) -> dict[str, object]:
    """Each output file: tables as records with the run folder cut out of their paths (sources
    are recorded by absolute path), every other file by its path."""
    outputs: dict[str, object] = {}
    for sub in ("results", "dataset"):
        for path in sorted((root / sub).rglob("*")):
            if not path.is_file() or path.name == "device_report.json":
                continue
            name = str(path.relative_to(root))
            if path.suffix == ".parquet":
                outputs[name] = neutral_table(path, root)
            else:
                outputs[name] = path
    return outputs


def _slurm_command(workdir: Path, limit_s: int) -> list[str]:
    """``snakemake --profile slurm all`` with the run's config, its SLURM logs kept, inside
    ``timeout -k``: the plugin can ignore SIGTERM while it waits on a job it cannot see."""
    return [
        *("timeout", "-k", "20", str(limit_s)),
        *(str(BIN / "snakemake"), "-s", str(REPO / "Snakefile")),
        *("--profile", str(REPO / "profiles" / "slurm"), "--slurm-keep-successful-logs"),
        *("--slurm-init-seconds-before-status-checks", "2", "all"),
        *("--configfile", str(workdir / "slurm-test.yaml")),
    ]


def _cancel_first_running_catalogue(proc: subprocess.Popen, log: Path) -> str:
    """Wait for the run's catalogue job to run, then kill it with scancel; its SLURM id."""
    deadline = time.monotonic() + 180
    run_id = None
    while time.monotonic() < deadline and proc.poll() is None:
        if run_id is None:
            found = re.search(r"SLURM run ID: (\S+)", log.read_text())
            run_id = found.group(1) if found else None
        if run_id is not None:
            queue = subprocess.run(
                ["squeue", "-h", "--name", run_id, "-o", "%i|%k|%T"], capture_output=True, text=True
            ).stdout
            for line in queue.splitlines():
                job, comment, state = line.split("|")
                if comment == "rule_catalogue" and state == "RUNNING":
                    subprocess.run(["scancel", job], check=True)
                    return job
        time.sleep(0.2)
    raise AssertionError(f"never saw the catalogue job running:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(1200)
def test_slurm_profile_runs_every_rule_as_a_slurm_job(slurm_cluster, tmp_path):
    workdir = tmp_path / "slurm-run"
    workdir.mkdir()
    (workdir / "slurm-test.yaml").write_text(yaml.safe_dump(SLURM_CONFIG))
    log = workdir / "snakemake.out"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "SENORITA_SLURM_ACCOUNT": ACCOUNT,
        "SENORITA_SLURM_PARTITION": PARTITION,
        # A shard group's rules share one submission; it may not ask for more than the node has.
        "SENORITA_SLURM_JOB_CORES": slurm_cluster["cpus"],
    }
    since = (datetime.now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    cmd = _slurm_command(workdir, RUN_LIMIT_S)
    t0 = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            cancelled = _cancel_first_running_catalogue(proc, log)
            rc = proc.wait(timeout=RUN_LIMIT_S + 60)
        finally:
            if proc.poll() is None:
                proc.kill()
    print(f"SLURM run: {time.monotonic() - t0:.0f}s")
    assert rc == 0, f"snakemake --profile slurm exited {rc}:\n{log.read_text()[-6000:]}"
    run_id = re.search(r"SLURM run ID: (\S+)", log.read_text()).group(1)

    rows = subprocess.run(
        [
            "sacct",
            "-X",
            "-P",
            "-n",
            "-S",
            since,
            "--name",
            run_id,
            "--format=JobIDRaw,State,Comment,AllocTRES,ReqMem,Account,Partition",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    jobs = [
        dict(
            zip(
                ["id", "state", "comment", "tres", "mem", "account", "partition"],
                row.split("|"),
                strict=True,
            )
        )
        for row in rows
    ]
    assert jobs, "sacct lists no jobs for this run"
    assert {(j["account"], j["partition"]) for j in jobs} == {(ACCOUNT, PARTITION)}

    # The killed job failed as CANCELLED and its rule was resubmitted, with memory doubled.
    killed = next(j for j in jobs if j["id"] == cancelled)
    assert killed["state"].startswith("CANCELLED") and killed["comment"] == "rule_catalogue"
    retried = [j for j in jobs if j["comment"] == "rule_catalogue" and j["state"] == "COMPLETED"]
    assert len(retried) == 1, jobs
    assert int(retried[0]["mem"].rstrip("M")) == 2 * int(killed["mem"].rstrip("M"))
    assert all(j["state"] == "COMPLETED" for j in jobs if j is not killed), jobs

    # Every job of the DAG ran, exactly once, inside a SLURM job that completed; grouping made
    # fewer submissions than jobs.
    ran: Counter = Counter()
    for job in (j for j in jobs if j["state"] == "COMPLETED"):
        (slurm_log,) = (workdir / "logs" / "slurm").glob(f"*/**/{job['id']}.log")
        targets = _target_jobs(slurm_log)
        text = slurm_log.read_text()
        finished = set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", text))
        assert finished == {t.split(":")[0] for t in targets}, slurm_log
        assert f"{len(targets)} of {len(targets)} steps (100%) done" in text, slurm_log
        ran.update(targets)
    assert set(ran.values()) == {1}, ran  # no job ran twice
    assert Counter(target.split(":")[0] for target in ran) == _expected_jobs(tmp_path / "dry")
    assert len(jobs) - 1 < sum(ran.values())

    # Only the GPU rule holds a GPU, and the job saw its allocation.
    gpu_jobs = [j for j in jobs if "gres/gpu" in j["tres"]]
    # ... and no CPU rule holds one (a job's comment is rule_<name>[_wildcards_<values>]).
    assert {j["comment"].split("_wildcards_")[0] for j in gpu_jobs} == GPU_RULES
    assert all("gres/gpu=1" in j["tres"].split(",") for j in gpu_jobs)
    gpu_jobs = [j for j in gpu_jobs if j["comment"] == "rule_device_report"]
    report = yaml.safe_load((workdir / "results" / "device_report.json").read_text())
    assert report["environment"]["SLURM_JOB_ID"] == gpu_jobs[0]["id"]
    assert report["environment"]["SLURM_GPUS_ON_NODE"] == "1"

    # Every output equals a local run's of the same config: same files, same rows, same videos.
    # The local run is `make demo`'s kind, beside a warm worker, so this also checks that a job
    # forked from the worker writes what a job in its own process (on the cluster) writes.
    local_dir = tmp_path / "local-run"
    local_dir.mkdir()
    snakemake(local_dir, "--cores", "2", "all", config=SLURM_CONFIG, warm=True)
    worker_log = (local_dir / "worker.log").read_text()
    assert re.findall(r"ran \['([\w-]+)'\]", worker_log) and "refused" not in worker_log
    local, slurm = _outputs(local_dir), _outputs(workdir)
    local = {n: out for n, out in local.items() if not n.startswith(RUN_LEVEL)}
    slurm = {n: out for n, out in slurm.items() if not n.startswith(RUN_LEVEL)}
    assert {n.split("/")[1] for n in slurm if n.startswith("dataset/")} >= {
        "deblur",
        "depth_detection",
    }
    assert any(n.startswith("dataset/depth_detection/") and n.endswith(".mp4") for n in slurm)
    assert slurm.keys() == local.keys(), slurm.keys() ^ local.keys()
    differ = [n for n, out in slurm.items() if not _same(n, local[n], out)]
    assert differ == []


def _slurm_conf_paths() -> list[Path]:
    """The folders and files slurm.conf names (state, spool, logs, pid files)."""
    keys = ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldLogFile", "SlurmdLogFile")
    paths = []
    for line in Path("/etc/slurm/slurm.conf").read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() in keys and value.strip():
            paths.append(Path(value.strip()))
    return paths


def _grep(roots: list[Path], needle: str) -> list[str]:
    """Every file under ``roots`` whose bytes contain ``needle`` (grep -r, binary files too)."""
    existing = [str(r) for r in roots if r.exists()]
    proc = subprocess.run(
        ["grep", "-r", "-l", "-a", "-F", needle, *existing], capture_output=True, text=True
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout.split()


@pytest.mark.timeout(RUN_LIMIT_S * 2 + 300)
def test_pexels_key_reaches_no_slurm_disk(slurm_cluster, tmp_path):
    """A `source: pexels` run through the slurm profile with a canary key in the environment of
    `snakemake --profile slurm`: the crawl runs on this host (a local rule), the jobs sent to
    SLURM carry no key, and no file SLURM, Snakemake or the pipeline wrote holds it."""
    from pexels_helpers import KEY

    from senorita.testing.pexels_server import PexelsServer, Plan, fake_videos, make_media

    # A variable that does travel with every job: where it is found, job environments are kept.
    marker = f"senorita-env-marker-{os.getpid()}-{time.time_ns()}"
    media = make_media(tmp_path / "media", count=2, width=640, height=360, seconds=3.0)
    videos = fake_videos(60, seed=7)
    workdir = tmp_path / "slurm-pexels"
    workdir.mkdir()
    with PexelsServer(media, videos, KEY, Plan()) as server:
        config = {
            **SLURM_CONFIG,
            "tasks": only_tasks("deblur"),
            "shards": 1,
            "source": {
                "kind": "pexels",
                "pexels": server.source_config(queries=[], max_videos=2, per_page=2),
            },
            "encode": {"preset": "ultrafast"},
        }
        (workdir / "slurm-test.yaml").write_text(yaml.safe_dump(config))
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "SENORITA_SLURM_ACCOUNT": ACCOUNT,
            "SENORITA_SLURM_PARTITION": PARTITION,
            "SENORITA_SLURM_JOB_CORES": slurm_cluster["cpus"],
            "PEXELS_API_KEY": KEY,
            "SENORITA_TEST_MARKER": marker,
        }
        # Thirteen jobs: on an idle machine about 3 minutes, on a busy 2-core one up to 10.
        cmd = _slurm_command(workdir, RUN_LIMIT_S * 2)
        t0 = time.monotonic()
        proc = subprocess.run(
            cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_LIMIT_S * 2 + 60
        )
        print(f"SLURM pexels run: {time.monotonic() - t0:.0f}s")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        api = server.api_requests()
    assert api and all(r["auth_ok"] for r in api)  # the crawl had the key ...
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    comments = subprocess.run(
        ["sacct", "-X", "-P", "-n", "--name", run_id, "--format=Comment"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert comments and "rule_catalogue" not in comments  # ... and ran here, not in SLURM
    pairs = pd.read_parquet(workdir / "dataset" / "deblur" / "manifest.parquet")
    assert len(pairs) > 0 and pairs["pexels_id"].notna().all()

    slurm_disk = _slurm_conf_paths()
    mysql = Path("/var/lib/mysql")
    # The marker is found where SLURM keeps job environments: the grep looks in the right place.
    assert _grep(slurm_disk, marker), f"no job environment found under {slurm_disk}"
    # The key is in none of them, nor in the accounting database, the job logs, .snakemake/,
    # the outputs, or what snakemake printed.
    assert _grep([*slurm_disk, mysql, workdir], KEY) == []
    assert KEY not in out
