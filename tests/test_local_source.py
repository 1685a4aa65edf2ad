"""A folder of the user's videos, some of them broken: bad files are rejected, good ones clipped."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from conftest import only_tasks, snakemake
from senorita.sources.demo import generate_video


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    generate_video(folder / "good_a.mp4", 0, seed=7)
    (folder / "nested").mkdir()
    generate_video(folder / "nested" / "good b.mov", 4, seed=7)  # a space, another container name
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "corrupt.mp4").write_bytes(bytes(range(256)) * 64)
    good = (folder / "good_a.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(good[: len(good) // 2])
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3",
            "-c:a",
            "aac",
            str(folder / "audio_only.mp4"),
        ],
        check=True,
    )
    (folder / ".hidden.mp4").write_bytes(b"ignored: hidden files are not candidates")
    return folder


def test_bad_files_land_in_rejects_and_good_files_become_clips(messy_folder, tmp_path):
    config = {
        "shards": 2,
        "source": {"kind": "local", "local": {"path": str(messy_folder)}},
        "tasks": only_tasks("colorization"),
    }
    snakemake(tmp_path, "--cores", "2", "all", config=config)
    rejects = pd.read_parquet(tmp_path / "dataset" / "rejects.parquet")
    by_name = {
        p.rsplit("/", 1)[-1]: r for p, r in zip(rejects["path"], rejects["reason"], strict=True)
    }
    assert set(by_name) == {"zero.mp4", "corrupt.mp4", "truncated.mp4", "audio_only.mp4"}
    assert by_name["zero.mp4"].startswith("empty")
    assert by_name["audio_only.mp4"].startswith("no video stream")
    assert by_name["corrupt.mp4"].startswith("unreadable")
    assert by_name["truncated.mp4"].startswith(("corrupt or truncated", "unreadable"))
    assert set(rejects["stage"]) == {"ingest"}

    catalogue = pd.read_parquet(tmp_path / "results/sources/catalogue.parquet")
    good = set(
        catalogue.loc[catalogue["source_name"].str.startswith(("good", "nested")), "video_id"]
    )
    assert len(good) == 2
    clips = pd.concat(
        pd.read_parquet(tmp_path / f"results/clips/{s:05d}.parquet") for s in range(2)
    )
    assert set(clips["video_id"]) == good
    pairs = pd.read_parquet(tmp_path / "dataset/colorization/manifest.parquet")
    assert set(pairs["video_id"]) == good
    assert not (tmp_path / "dataset" / "deblur").exists()
    card = (tmp_path / "dataset" / "README.md").read_text()
    assert "ingest: empty: 1" in card and "ingest: no video stream" in card


def test_missing_folder_is_a_clear_error(tmp_path):
    config = {"source": {"kind": "local", "local": {"path": str(tmp_path / "nope")}}}
    proc = snakemake(tmp_path, "--cores", "1", "all", config=config, check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs" / "catalogue.log").read_text()
    assert "source.local.path" in log and "nope" in log


def test_the_same_file_under_two_names_gives_distinct_clips(tmp_path):
    folder = tmp_path / "videos"
    generate_video(folder / "a.mp4", 0, seed=11)
    (folder / "copy_of_a.mp4").write_bytes((folder / "a.mp4").read_bytes())
    config = {
        "shards": 1,
        "source": {"kind": "local", "local": {"path": str(folder)}},
        "tasks": only_tasks("colorization"),
        "captions": {"enabled": False},
        "dedup": {"enabled": False},
    }
    snakemake(tmp_path / "run", "--cores", "2", "all", config=config)
    clips = pd.read_parquet(tmp_path / "run/results/clips/00000.parquet")
    assert len(clips) == 2 and clips["clip_id"].is_unique
    assert clips["sha256"].nunique() == 1  # same content, cut identically
    pairs = pd.read_parquet(tmp_path / "run/dataset/colorization/manifest.parquet")
    assert len(pairs) == 2 and pairs["pair_id"].is_unique
    # With dedup on (the default), the copy is a near duplicate: no clip, a reject naming a.mp4.
    snakemake(tmp_path / "run", "--cores", "2", "all", config={**config, "dedup": {}})
    clips = pd.read_parquet(tmp_path / "run/results/clips/00000.parquet")
    rejects = pd.read_parquet(tmp_path / "run/results/clips/00000.rejects.parquet")
    assert len(clips) == 1 and len(rejects) == 1
    (reason,) = rejects["reason"]
    assert reason.startswith(f"near duplicate: of {clips['video_id'].iloc[0]} (similarity 1")
