"""A file host that drops connections for a while: transient failures are never rejects.

The loopback server drops the connection for a quarter of the files during the first run and
then recovers. Checked: a shard with too many such failures fails its job, naming the count and
the first errors; with fewer, the job succeeds, those videos are neither accepted nor rejected
but pending, and the next run fetches them; every good video ends up accepted, downloaded once.
The Snakemake-level test checks the rerun through the workflow, to the dataset.
"""

from __future__ import annotations

import collections
import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from pexels_helpers import KEY, files_containing, full_config

from conftest import only_tasks, snakemake
from senorita.catalogue import build_catalogue
from senorita.ingest import ingest_shard
from senorita.sources.pexels import DownloadsIncomplete
from senorita.testing.pexels_server import PexelsServer, Plan, fake_videos, make_media

CLIPS = {"frames": 33, "stride": 2}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> list[Path]:
    return make_media(tmp_path_factory.mktemp("media"), count=3)


def _ingest(cfg: dict, catalogue: Path, shard: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = catalogue.parent.parent / "ingest"
    return ingest_shard(
        catalogue,
        shard,
        cfg["source"],
        cfg["ingest"],
        CLIPS,
        folder / f"{shard:05d}.parquet",
        folder / f"{shard:05d}.rejects.parquet",
    )


def _quarter(ids) -> set[int]:
    return {int(v) for i, v in enumerate(sorted(ids)) if i % 4 == 0}


def test_dropped_downloads_stay_pending_and_the_next_run_fetches_them(
    tmp_path, media, caplog, monkeypatch
):
    monkeypatch.setenv("PEXELS_API_KEY", KEY)
    videos = fake_videos(200, seed=4)
    plan = Plan()
    with PexelsServer(media, videos, KEY, plan) as server:
        base = {"queries": ["cat"], "per_page": 20, "max_videos": 16}
        cfg = full_config(
            {
                "source": {"kind": "pexels", "pexels": server.source_config(**base)},
                "ingest": {"min_short_side": 32, "verify_decode": False},
            }
        )
        catalogue = tmp_path / "results" / "sources" / "catalogue.parquet"
        cat = build_catalogue(cfg["source"], 2, catalogue)
        assert len(cat) == 16
        plan.dropped = _quarter(cat["pexels_id"])
        shard_of = dict(zip(cat["pexels_id"], cat["shard"], strict=True))

        # 1. The default max_failed_fraction (0.05): each shard's job fails, naming the count and
        # the first errors, and writes no table; the files it did get are kept.
        for shard in (0, 1):
            dropped = sum(1 for v in plan.dropped if shard_of[v] == shard)
            n = int((cat["shard"] == shard).sum())
            with pytest.raises(DownloadsIncomplete) as err:
                _ingest(cfg, catalogue, shard)
            assert f"{dropped} of {n} downloads failed transiently" in str(err.value)
            assert "First errors: pexels-" in str(err.value) and "ConnectionError" in str(err.value)
        assert not list((tmp_path / "results" / "ingest").glob("*.parquet"))
        on_disk = {int(p.name.split("-")[0]) for p in tmp_path.rglob("[0-9]*.mp4")}
        assert on_disk == set(cat["pexels_id"]) - plan.dropped

        # 2. A tolerant threshold: the jobs succeed; dropped videos are pending, not rejects.
        cfg["source"]["pexels"]["download"]["max_failed_fraction"] = 0.5
        files_before = len(server.file_requests())
        with caplog.at_level(logging.INFO):
            acc = pd.concat([_ingest(cfg, catalogue, s)[0] for s in (0, 1)])
            rej = pd.concat(
                [
                    pd.read_parquet(catalogue.parent.parent / f"ingest/{s:05d}.rejects.parquet")
                    for s in (0, 1)
                ]
            )
        assert set(acc["pexels_id"]) == set(cat["pexels_id"]) - plan.dropped
        assert rej.empty
        # Only the dropped files were asked for again (the others were finished).
        again = {r["video_id"] for r in server.file_requests()[files_before:]}
        assert again == plan.dropped
        pending_dir = catalogue.parent / "pending"
        records = {s: json.loads((pending_dir / f"{s:05d}.json").read_text()) for s in (0, 1)}
        assert {v for r in records.values() for v in r["pending"]} == {
            f"pexels-{v}" for v in plan.dropped
        }
        assert all(r["generation"] == 1 for r in records.values())
        assert "failed for now" in caplog.text

        # 3. The host recovers; the next run fetches exactly the pending files.
        plan.dropped = set()
        files_before = len(server.file_requests())
        acc = pd.concat([_ingest(cfg, catalogue, s)[0] for s in (0, 1)])
        assert sorted(acc["pexels_id"]) == sorted(cat["pexels_id"])
        left = {int(v.split("-")[1]) for r in records.values() for v in r["pending"]}
        assert {r["video_id"] for r in server.file_requests()[files_before:]} == left
        complete = collections.Counter(
            r["video_id"] for r in server.file_requests() if r.get("complete")
        )
        assert set(complete) == set(cat["pexels_id"]) and set(complete.values()) == {1}
        for s in (0, 1):
            record = json.loads((pending_dir / f"{s:05d}.json").read_text())
            assert record["pending"] == {} and record["generation"] == 1  # nothing left; stable

        # 4. Nothing left: a further run asks for no file.
        files_before = len(server.file_requests())
        _ingest(cfg, catalogue, 0)
        assert len(server.file_requests()) == files_before
    assert files_containing(tmp_path, KEY) == []


def test_a_corrupt_rendition_falls_back_to_the_next_one_once(tmp_path, media, monkeypatch):
    monkeypatch.setenv("PEXELS_API_KEY", KEY)
    videos = fake_videos(100, seed=5)
    newest = sorted((v.id for v in videos if v.good), reverse=True)
    plan = Plan(video_faults={newest[0]: "corrupt_first", newest[1]: "corrupt"})
    with PexelsServer(media, videos, KEY, plan) as server:
        cfg = full_config(
            {
                "source": {
                    "kind": "pexels",
                    "pexels": server.source_config(queries=[], per_page=10, max_videos=6),
                },
                "ingest": {"min_short_side": 32, "verify_decode": False},
            }
        )
        catalogue = tmp_path / "results" / "sources" / "catalogue.parquet"
        cat = build_catalogue(cfg["source"], 1, catalogue)
        assert {newest[0], newest[1]} <= set(cat["pexels_id"])
        acc, rej = _ingest(cfg, catalogue, 0)
        fixed = acc.set_index("pexels_id").loc[newest[0]]
        first = cat.set_index("pexels_id").loc[newest[0]]
        # The accepted row names the file it holds: the next rendition, not the first.
        assert fixed["rendition_file_id"] != first["rendition_file_id"]
        assert fixed["rendition_file_id"] == json.loads(first["rendition_alt"])["rendition_file_id"]
        assert Path(fixed["path"]).name == f"{newest[0]}-{fixed['rendition_file_id']}.mp4"
        # Both renditions of the other are corrupt: a reject that says so, after two files.
        (reason,) = rej.loc[rej["video_id"] == f"pexels-{newest[1]}", "reason"]
        assert (
            reason.startswith("download corrupt") and "next rendition: download corrupt" in reason
        )
        asked = collections.Counter(r["video_id"] for r in server.file_requests())
        assert asked[newest[1]] == 2 and asked[newest[0]] == 2
        # A rerun takes the fallen-back file as it is: requests only for the reject.
        n = len(server.file_requests())
        acc2, _ = _ingest(cfg, catalogue, 0)
        assert {r["video_id"] for r in server.file_requests()[n:]} == {newest[1]}
        assert set(acc2["pexels_id"]) == set(acc["pexels_id"])


@pytest.mark.slow
def test_workflow_rerun_fetches_what_a_dropping_host_left_pending(tmp_path):
    media = make_media(tmp_path / "media", count=2, width=640, height=360, seconds=3.0)
    videos = fake_videos(120, seed=6)
    plan = Plan()
    workdir = tmp_path / "run"
    with PexelsServer(media, videos, KEY, plan) as server:
        # A quarter of the newest good videos (those the popular-only crawl keeps) drop.
        newest = sorted((v.id for v in videos if v.good), reverse=True)[:8]
        plan.dropped = _quarter(newest)
        config = {
            "source": {
                "kind": "pexels",
                "pexels": server.source_config(
                    queries=[],
                    max_videos=8,
                    per_page=8,
                    download={"max_failed_fraction": 0.5},
                ),
            },
            "shards": 2,
            "encode": {"preset": "ultrafast"},
            "tasks": only_tasks("deblur"),
            "captions": {"enabled": False},
            "export": {"webdataset": False},
            # The fake server serves two media files for all its videos: to dedup they are copies.
            "dedup": {"enabled": False},
        }
        env = {"PEXELS_API_KEY": KEY}
        snakemake(workdir, "--cores", "2", "all", config=config, env=env)
        catalogue = pd.read_parquet(workdir / "results/sources/catalogue.parquet")
        assert set(catalogue["pexels_id"]) == set(newest)
        pairs = pd.read_parquet(workdir / "dataset/deblur/manifest.parquet")
        assert set(pairs["pexels_id"]) == set(newest) - plan.dropped
        rejects = pd.read_parquet(workdir / "dataset/rejects.parquet")
        assert not set(rejects["video_id"]) & {f"pexels-{v}" for v in plan.dropped}

        # The host recovers. A dry run shows the ingest jobs of the pending shards rerunning.
        pending_shards = {
            f"{s:05d}"
            for v, s in zip(catalogue["pexels_id"], catalogue["shard"], strict=True)
            if v in plan.dropped
        }
        plan.dropped = set()
        dry = snakemake(workdir, "-n", "all", config=config, env=env)
        assert "Params have changed" in dry.stdout + dry.stderr
        for shard in pending_shards:
            assert f"results/ingest/{shard}.parquet" in dry.stdout

        snakemake(workdir, "--cores", "2", "all", config=config, env=env)
        pairs = pd.read_parquet(workdir / "dataset/deblur/manifest.parquet")
        assert set(pairs["pexels_id"]) == set(newest)  # every good video, now
        complete = collections.Counter(
            r["video_id"] for r in server.file_requests() if r.get("complete")
        )
        assert set(complete) == set(newest) and set(complete.values()) == {1}  # each once

        # Nothing left to do.
        dry = snakemake(workdir, "-n", "all", config=config, env=env)
        assert "Nothing to be done" in dry.stdout + dry.stderr
    assert files_containing(workdir, KEY) == []
