"""Real deaths: SIGKILL, not an exception raised in-process.

``snakemake`` itself is killed mid-run with its jobs (a lost login session on a workstation); the
rerun, after ``--unlock``, with ``--rerun-incomplete``, finishes the run, and every output equals
an uninterrupted run's. Per-stage kills of the shard jobs are in tests/test_resume.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import BIN, REPO, neutral_table, only_tasks, snakemake

pytestmark = pytest.mark.e2e

# A cut-down default: one operator task and one model task (control maps: a journaled GPU stage).
CONFIG = {
    "tasks": only_tasks("deblur", "depth_detection"),
    "captions": {"enabled": False},
    "export": {"webdataset": False},
}
# Run-level files that name the run (times, paths, code version) rather than its data.
RUN_LEVEL = ("results/provenance/", "results/report/", "results/device_report.json")
# torch.save writes a random serialization id into each checkpoint.
MODEL_FILES = ("results/models/",)


def _outputs(root: Path) -> dict[str, Path]:
    files = {}
    for top in ("results", "dataset"):
        for path in (root / top).rglob("*"):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and not rel.startswith(RUN_LEVEL):
                files[rel] = path
    return files


def _same(rel: str, a: Path, b: Path, roots: tuple[Path, Path]) -> bool:
    if rel.startswith(MODEL_FILES):
        return True  # present in both is what can be asked
    if rel.endswith(".parquet"):
        x, y = neutral_table(a, roots[0]), neutral_table(b, roots[1])
        drop = [c for c in ("code_version",) if c in x.columns]
        x, y = x.drop(columns=drop), y.drop(columns=drop)
        try:
            pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-5, atol=1e-6)
        except AssertionError:
            return False
        return True
    if rel.endswith("README.md"):  # the card names the code version
        return True
    return a.read_bytes() == b.read_bytes()


def _wait_for(pred, proc: subprocess.Popen, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_snakemake_killed_mid_run_resumes_to_the_same_outputs(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    snakemake(whole, "--cores", "2", "all", config=CONFIG)

    killed.mkdir()
    config = killed / "test-config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(killed)]
    cmd += ["--configfile", str(config), "--cores", "2"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    log = (killed / "first-run.log").open("w")
    proc = subprocess.Popen(
        [*cmd, "all"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    # Kill while the control-map job is half done: its journal holds an item, its table doesn't
    # exist yet. The whole process group goes, jobs included, with no cleanup.
    journal = killed / "results/control"
    mid_job = _wait_for(
        lambda: any(j.stat().st_size for j in journal.glob("*.journal.jsonl")), proc, 600
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    assert mid_job, "the run ended before a control-map job was half done; see first-run.log"
    assert not (killed / "dataset/README.md").exists()

    subprocess.run([*cmd, "--unlock"], check=True, env=env, capture_output=True)
    rerun = subprocess.run(
        [*cmd, "--rerun-incomplete", "all"], env=env, capture_output=True, text=True, timeout=900
    )
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    control_logs = "".join(p.read_text() for p in (killed / "logs" / "control").glob("*.log"))
    assert re.search(r"resuming from .*: [1-9]\d* items already done", control_logs), (
        "the rerun control job did not resume from the killed job's journal"
    )

    a, b = _outputs(whole), _outputs(killed)
    assert set(a) == set(b), set(a) ^ set(b)
    assert any(r.startswith("dataset/deblur/") and r.endswith(".mp4") for r in a)
    differ = [rel for rel in sorted(a) if not _same(rel, a[rel], b[rel], (whole, killed))]
    assert not differ, differ
    again = snakemake(killed, "-n", "all", config=CONFIG)
    assert "Nothing to be done" in again.stdout + again.stderr
