"""A shard job killed mid-way resumes where it stopped; a finished one is not redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from senorita.catalogue import build_catalogue
from senorita.sources.demo import generate_video

CLIPS = {
    "frames": 9,
    "stride": 2,
    "height": 96,
    "width": 160,
    "per_video": 3,
    "shot_margin": 2,
    "scene_threshold": 27.0,
    "min_shot_frames": 15,
    "static_motion": 0.25,
    "crf": 18,
    "preset": "veryslow",
}
INGEST = {"min_duration_s": 0.5, "min_short_side": 64, "verify_decode": False}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "senorita", *args]


# A real stage process, SIGKILLed: with the other kill tests in `make test`, not the fast loop.
@pytest.mark.e2e
def test_killed_clip_job_resumes_without_redoing_finished_clips(tmp_path):
    videos = tmp_path / "videos"
    for i in range(4):
        generate_video(videos / f"v{i}.mp4", i, seed=3)
    source = {
        "kind": "local",
        "local": {"path": str(videos), "patterns": ["*.mp4"], "licence": None},
    }
    catalogue = tmp_path / "catalogue.parquet"
    build_catalogue(source, 1, catalogue)
    ingested = tmp_path / "ingest.parquet"
    subprocess.run(
        _cli(
            "ingest",
            "--catalogue",
            str(catalogue),
            "--shard",
            "0",
            "--source",
            json.dumps(source),
            "--params",
            json.dumps(INGEST),
            "--clips",
            json.dumps(CLIPS),
            "--out",
            str(ingested),
            "--rejects",
            str(tmp_path / "ingest.rejects.parquet"),
        ),
        check=True,
    )
    out, media = tmp_path / "clips.parquet", tmp_path / "clips"
    cmd = _cli(
        "clips",
        "--videos",
        str(ingested),
        "--shard",
        "0",
        "--params",
        json.dumps(CLIPS),
        "--media",
        str(media),
        "--out",
        str(out),
        "--rejects",
        str(tmp_path / "rej.parquet"),
    )
    journal = Path(str(out) + ".journal.jsonl")

    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # a real, unannounced death: no cleanup runs
    proc.wait()
    assert not out.exists(), "the job finished before it could be killed; make it slower"
    done = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    assert 1 <= len(done) < 4
    finished = {c["path"]: os.stat(c["path"]).st_mtime_ns for d in done for c in d["value"]["rows"]}
    assert finished

    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    table = pd.read_parquet(out)
    assert set(table["video_id"]) == set(pd.read_parquet(ingested)["video_id"])
    assert len(table) >= 4
    for path, mtime in finished.items():
        assert os.stat(path).st_mtime_ns == mtime, f"{path} was cut again"
    assert not journal.exists()
    assert sorted(p.name for p in media.iterdir()) == sorted(Path(p).name for p in table["path"])

    # A rerun after a finished job (as --forcerun does) starts afresh and gives the same clips.
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    again = pd.read_parquet(out)
    assert again.equals(table)
