"""The warm worker (`senorita warm -- ...`): a command forked from it does what it does in its own
process, reports its exit status and streams to its caller, dies with its caller, and is refused
(then runs in its own process) under an environment its imports were not made in."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import BIN

SOURCE = json.dumps({"kind": "demo", "demo": {"videos": 1, "seed": 3}})


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """A worker serving this test process, as `senorita warm` starts one; its address and log."""
    folder = tmp_path_factory.mktemp("worker")
    address, log = folder / "socket", folder / "worker.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "senorita.worker", str(address), str(os.getpid()), str(log)],
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while "imports ready" not in (log.read_text() if log.exists() else ""):
        assert server.poll() is None, "the worker exited while importing"
        assert time.monotonic() < deadline, "the worker did not finish its imports"
        time.sleep(0.2)
    yield address, log
    server.terminate()
    server.wait(timeout=30)


def senorita(*argv: str, cwd: Path, address: Path | None = None, **env: str):
    """Run the ``senorita`` console script, through the worker at ``address`` when given."""
    full_env = {**os.environ, **env}
    full_env.pop("SENORITA_WORKER", None)
    if address:
        full_env["SENORITA_WORKER"] = str(address)
    return subprocess.run(
        [str(BIN / "senorita"), *argv], cwd=cwd, env=full_env, capture_output=True, text=True
    )


def ran(log: Path) -> list[str]:
    return re.findall(r"ran \['([\w-]+)'\]: pid \d+, exit (\d+)", log.read_text())


def test_a_command_in_the_worker_writes_what_its_own_process_writes(worker, tmp_path):
    address, log = worker
    outputs = {}
    for name, via in (("own", None), ("worker", address)):
        cwd = tmp_path / name
        cwd.mkdir()
        before = len(ran(log))
        proc = senorita("catalogue", "--source", SOURCE, "--shards", "2", "--out",
                        "cat.parquet", cwd=cwd, address=via)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        # A relative path lands in the caller's folder; only the worker's run is in its log.
        assert ran(log)[before:] == ([("catalogue", "0")] if via else [])
        table = pd.read_parquet(cwd / "cat.parquet")
        assert len(table) == 1
        outputs[name] = {
            p.relative_to(cwd).as_posix(): p.read_bytes()
            for p in sorted(cwd.rglob("*"))
            if p.is_file() and p.suffix != ".parquet"
        }
        outputs[name]["table"] = table.assign(
            path=table["path"].str.replace(str(cwd), "", regex=False)
        ).to_json()
    # The demo videos are made by ffmpeg subprocesses: the forked command waits on its children.
    assert any(name.endswith(".mp4") for name in outputs["worker"])
    # The log says what the command cost: its seconds and its CPU seconds (ffmpeg's included).
    seconds, cpu = map(float, re.findall(r"ran \['catalogue'\].*, ([\d.]+) s, ([\d.]+) CPU s",
                                          log.read_text())[-1])  # fmt: skip
    assert 0 < cpu <= 2 * seconds + 0.1
    assert outputs["worker"] == outputs["own"]


def test_exit_status_and_error_reach_the_caller(worker, tmp_path):
    address, log = worker
    proc = senorita("plan", "--config", "missing.yaml", cwd=tmp_path, address=address)
    assert proc.returncode == 1
    assert "plan failed" in proc.stderr and "missing.yaml" in proc.stderr
    proc = senorita("no-such-stage", cwd=tmp_path, address=address)
    assert proc.returncode == 2 and "invalid choice: 'no-such-stage'" in proc.stderr
    proc = senorita("plan", "--help", cwd=tmp_path, address=address)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: senorita plan")
    assert ran(log)[-3:] == [("plan", "1"), ("no-such-stage", "2"), ("plan", "0")]


def test_a_killed_job_kills_its_command(worker, tmp_path):
    address, log = worker
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)  # reading it blocks until a writer comes: a command that runs until killed
    env = {**os.environ, "SENORITA_WORKER": str(address)}
    job = subprocess.Popen(
        [str(BIN / "senorita"), "plan", "--config", str(fifo)], env=env, cwd=tmp_path
    )
    time.sleep(3)
    assert job.poll() is None
    job.send_signal(signal.SIGKILL)
    job.wait()
    deadline = time.monotonic() + 30
    while not (found := re.search(r"killed \(its job went away\) \['plan'\]: pid (\d+)",
                                  log.read_text())):  # fmt: skip
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    assert not Path(f"/proc/{found.group(1)}").exists()


def test_a_different_import_time_environment_is_refused(worker, tmp_path):
    address, log = worker
    before = len(ran(log))
    own = senorita("plan", "--help", cwd=tmp_path)
    refused = senorita("plan", "--help", cwd=tmp_path, address=address, HF_HUB_CACHE="/elsewhere")
    assert refused.returncode == 0 and refused.stdout == own.stdout
    assert ran(log)[before:] == []
    assert "refused, runs in its own process (environment differs: HF_HUB_CACHE)" in (
        log.read_text()
    )
    # Variables the imports do not read change nothing: the command runs in the worker.
    other = senorita("plan", "--help", cwd=tmp_path, address=address, SOME_SETTING="x")
    assert other.stdout == own.stdout and ran(log)[before:] == [("plan", "0")]


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_command_gets_its_jobs_thread_counts(worker, tmp_path, threads):
    """Snakemake sets OMP/MKL/OPENBLAS_NUM_THREADS to each job's threads: a forked command sizes
    torch's and the BLAS pools to them, as a process started with them would."""
    address, log = worker
    counts = {v: threads for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    reports = {}
    for name, via in (("own", None), ("worker", address)):
        out = tmp_path / f"{name}.json"
        before = len(ran(log))
        proc = senorita("device-report", "--out", str(out), cwd=tmp_path, address=via, **counts)
        assert proc.returncode == 0, proc.stderr
        assert ran(log)[before:] == ([("device-report", "0")] if via else [])
        report = json.loads(out.read_text())
        # (the worker's imports load more BLAS libraries than this command does: each is sized)
        reports[name] = (
            report["torch"]["cpu_threads"],
            {b["threads"] for b in report["blas_threads"]},
        )
    assert reports["worker"] == reports["own"] == (int(threads), {int(threads)})


def test_warm_runs_a_command_beside_a_worker(tmp_path):
    # The command sees the worker's address; its exit status is warm's; the worker and its socket
    # are gone after it (the commands a worker runs are the tests above).
    script = "echo $SENORITA_WORKER > address; test -S $SENORITA_WORKER"
    proc = subprocess.run(
        [str(BIN / "senorita"), "warm", "--", "bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    address = Path((tmp_path / "address").read_text().strip())
    assert address.name == "socket" and not address.parent.exists()
    failed = subprocess.run([str(BIN / "senorita"), "warm", "--", "false"], cwd=tmp_path)
    assert failed.returncode == 1
    usage = subprocess.run([str(BIN / "senorita"), "warm"], capture_output=True, text=True)
    assert usage.returncode == 1 and "no command given" in usage.stderr


def test_warm_passes_sigterm_to_its_command(tmp_path):
    """Stopping warm stops its command the way the command stops (Snakemake cancels its jobs),
    rather than leaving it running or killing it under its jobs."""
    script = 'trap "echo stopped > stopped; exit 3" TERM; touch started; sleep 60 & wait'
    proc = subprocess.Popen(
        [str(BIN / "senorita"), "warm", "--", "bash", "-c", script], cwd=tmp_path
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 3
    assert (tmp_path / "stopped").read_text() == "stopped\n"
