"""The journaled model stages survive a real SIGKILL mid-shard.

Each stage runs as the rule runs it (``python -m senorita <stage>`` in its own process) on a shard
of six clips; the process is killed with SIGKILL once its journal holds a finished clip. The rerun
must resume from the journal (the clips it lists are not redone: their files keep their
timestamps) and end with the table a single uninterrupted run writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO, neutral_table
from senorita.clips import CLIP_COLUMNS
from senorita.testing.tiny import build_tiny_models
from senorita.video import write_frames

CLIPS, T, H, W = 6, 9, 96, 160
FAMILIES = ("captioner", "clip", "depth", "hed", "vlm", "detector", "segmenter", "remover")

# Whole stage processes, three runs each: minutes, so outside `make test-fast`.
pytestmark = pytest.mark.e2e


def _defaults() -> dict:
    """The embedded default's config with the schema's defaults filled in, as Snakemake sees it."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage-kills")
    config = _defaults()
    models = config["models"]
    folders = build_tiny_models(root / "tiny", FAMILIES)
    for family in FAMILIES[:-1]:
        models[family].update(id=str(folders[family]), device="cpu")
    # The remover twin makes object_removal pairs at the twin's working size, instructions from
    # the templates (no language-model job), from the masks the masks stage makes of this shard.
    experts = config["experts"]
    experts.update(frames=T, height=48, width=80, llm_instructions=False)
    experts["remover"].update(id=str(folders["remover"]), device="cpu", dtype="float32")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(CLIPS):
        frames = np.repeat(rng.integers(0, 60, (1, H, W, 3), dtype=np.uint8), T, axis=0)
        for k in range(T):  # a bright square sliding right: something to caption and segment
            frames[k, 30:62, 10 + 6 * k + 4 * i : 42 + 6 * k + 4 * i] = 255
        path = root / "clips" / f"clip{i}.mp4"
        write_frames(path, frames, 8.0, crf=18, preset="ultrafast")
        rows.append(
            {
                "clip_id": f"clip{i}",
                "video_id": f"video{i}",
                "shard": 0,
                "start_frame": 0,
                "end_frame": 2 * T - 1,
                "start_s": 0.0,
                "frames": T,
                "stride": 2,
                "fps": 8.0,
                "height": H,
                "width": W,
                "path": str(path),
                "sha256": "",
            }
        )
    clips = root / "clips.parquet"
    pd.DataFrame(rows, columns=CLIP_COLUMNS).to_parquet(clips)
    videos = root / "videos.parquet"
    ids = [r["video_id"] for r in rows]
    attribution = {"origin": "test", "licence": "CC0-1.0", "author": "a"}
    pd.DataFrame({"video_id": ids, **attribution}).to_parquet(videos)
    shard = {"root": root, "clips": clips, "videos": videos, "config": config}
    masks = root / "masks" / "masks.parquet"
    masks.parent.mkdir()
    subprocess.run(_command("masks", shard, masks)[0], check=True, capture_output=True)
    return {**shard, "masks": masks}


def _command(stage: str, shard: dict, out: Path) -> tuple[list[str], Path | None]:
    """The stage's command line (as its rule writes it) and its per-clip media folder."""
    config, media = shard["config"], out.parent / "media"
    common = ["--clips", str(shard["clips"]), "--shard", "0"]
    tail = ["--out", str(out), "--rejects", str(out.with_suffix(".rejects.parquet"))]
    if stage == "expert-pairs":  # the pairs' files go under --dataset, the table is the journal's
        task = "object_removal"
        args = ["--task", task, "--masks", str(shard["masks"])]
        args += ["--params", json.dumps(config["tasks"][task])]
        args += ["--experts", json.dumps(config["experts"]), "--seed", "0"]
        args += ["--encode", json.dumps(config["encode"]), "--dataset", str(media)]
        return [sys.executable, "-m", "senorita", stage, *common, *args, *tail], media
    families = {
        "captions": ["captioner", "clip"],
        "control-maps": ["depth", "hed"],
        "masks": ["vlm", "detector", "segmenter"],
    }[stage]
    models = json.dumps({f: config["models"][f] for f in families})
    if stage == "captions":
        args = ["--params", json.dumps(config["captions"]), "--models", models]
        media = None
    elif stage == "control-maps":
        args = ["--kinds", "depth,hed,scribble", "--params", json.dumps(config["control"])]
        args += ["--models", models, "--encode", json.dumps(config["encode"])]
        args += ["--media", str(media)]
    else:
        masks = {**config["masks"], "vocabulary": ["square"], "min_area": 0.0, "max_area": 1.0}
        args = ["--params", json.dumps(masks), "--models", models, "--media", str(media)]
    return [sys.executable, "-m", "senorita", stage, *common, *args, *tail], media


def _table(path: Path) -> pd.DataFrame:
    """The stage's table with its own folder cut out of its paths (the two runs write apart)."""
    return neutral_table(path, path.parent).drop(columns=["code_version"], errors="ignore")


@pytest.mark.parametrize("stage", ["captions", "control-maps", "masks", "expert-pairs"])
def test_a_stage_killed_mid_shard_resumes_and_ends_as_an_uninterrupted_run(shard, stage, tmp_path):
    if stage == "expert-pairs":
        assert len(pd.read_parquet(shard["masks"])["clip_id"].unique()) == CLIPS
    whole = tmp_path / "whole" / f"{stage}.parquet"
    cmd, _ = _command(stage, shard, whole)
    whole.parent.mkdir(parents=True)
    subprocess.run(cmd, check=True, capture_output=True)

    out = tmp_path / "killed" / f"{stage}.parquet"
    out.parent.mkdir(parents=True)
    cmd, media = _command(stage, shard, out)
    journal = out.with_name(out.name + ".journal.jsonl")
    log = out.with_suffix(".log")
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stderr=err)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_text().count("\n") >= 1:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no finally: a node going away
        proc.wait()
    assert not out.exists(), f"{stage} finished before it could be killed: {log.read_text()}"
    entries = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    done = [e["key"] for e in entries]
    assert 1 <= len(done) < CLIPS
    kept = {}
    if media is not None:  # the finished clips' files must not be made again
        # Files begin with the clip id (the key; control maps: "<clip id>:<kinds>") or, for
        # pairs, with the pair id of a journaled row.
        stems = {k.split(":")[0] for k in done}
        stems |= {r["pair_id"] for e in entries for r in e["value"]["rows"] if "pair_id" in r}
        kept = {
            p: p.stat().st_mtime_ns
            for p in media.rglob("*")
            if p.is_file() and any(p.name.startswith((f"{s}.", f"{s}_")) for s in stems)
        }
        assert kept

    rerun = subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert f"{len(done)} items already done" in rerun.stderr
    for path, mtime in kept.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was made again"
    assert not journal.exists()
    pd.testing.assert_frame_equal(_table(out), _table(whole), check_exact=False, rtol=1e-5)


def test_filter_scoring_killed_mid_task_resumes_and_ends_as_an_uninterrupted_run(shard, tmp_path):
    """The scores job (one per task over its shards) journals each finished shard: killed after
    one, the rerun does not score that shard again and writes the uninterrupted run's table."""
    config, shards = shard["config"], 3
    clips = pd.read_parquet(shard["clips"])
    pattern = str(tmp_path / "pairs" / "{shard}.parquet")
    dataset = tmp_path / "dataset"
    for i in range(shards):  # deblur pairs of two clips per shard, as the operator job makes them
        table = tmp_path / "clips" / f"{i:05d}.parquet"
        table.parent.mkdir(exist_ok=True)
        clips.iloc[2 * i : 2 * i + 2].assign(shard=i).to_parquet(table)
        out = Path(pattern.format(shard=f"{i:05d}"))
        out.parent.mkdir(exist_ok=True)
        cmd = ["--task", "deblur", "--shard", str(i), "--clips", str(table)]
        cmd += ["--params", json.dumps(config["tasks"]["deblur"]), "--seed", "0"]
        cmd += ["--encode", json.dumps(config["encode"]), "--dataset", str(dataset)]
        cmd += ["--out", str(out), "--rejects", str(out.with_suffix(".rejects.parquet"))]
        subprocess.run([sys.executable, "-m", "senorita", "operator-pairs", *cmd], check=True)
        assert len(pd.read_parquet(out)) == 2

    def command(out: Path) -> list[str]:
        args = ["--task", "deblur", "--pattern", pattern, "--shards", str(shards)]
        args += ["--dataset", str(dataset), "--params", json.dumps(config["filters"])]
        args += ["--models", json.dumps({"clip": config["models"]["clip"]}), "--workers", "1"]
        return [sys.executable, "-m", "senorita", "filter-scores", *args, "--out", str(out)]

    whole = tmp_path / "whole" / "scores.parquet"
    subprocess.run(command(whole), check=True, capture_output=True)
    out = tmp_path / "killed" / "scores.parquet"
    journal = out.with_name(out.name + ".journal.jsonl")
    proc = subprocess.Popen(command(out), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "scoring finished before it could be killed"
    done = [json.loads(line)["key"] for line in journal.read_text().splitlines() if line.strip()]
    assert 1 <= len(done) < shards

    rerun = subprocess.run(command(out), check=True, capture_output=True, text=True)
    assert f"{len(done)} items already done" in rerun.stderr
    scored = {
        line.split(" shard ")[1].split(":")[0]
        for line in rerun.stderr.splitlines()
        if "pairs scored" in line and " shard " in line
    }
    assert scored == {f"{i:05d}" for i in range(shards)} - set(done)  # only the unfinished
    assert not journal.exists()
    pd.testing.assert_frame_equal(
        pd.read_parquet(out), pd.read_parquet(whole), check_exact=False, rtol=1e-5
    )
