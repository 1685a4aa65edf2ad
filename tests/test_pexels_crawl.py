"""A crawl and per-shard download against the loopback Pexels server with every fault on."""

from __future__ import annotations

import collections
import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from pexels_helpers import KEY, files_containing, full_config

from senorita.catalogue import build_catalogue
from senorita.ingest import ingest_shard
from senorita.sources import make_source
from senorita.testing.pexels_server import (
    RECOVERABLE_VIDEO_FAULTS,
    PexelsServer,
    all_faults,
    fake_videos,
    make_media,
)

# Transient page faults: each costs one extra request. Malformed / missing-field pages are
# answered 200 (the crawler records and skips them without asking again).
RETRIED_PAGE_FAULTS = {"rate_limit", "server_error", "slow", "truncated"}
EXPECTED_REASON = {
    "corrupt": "download corrupt: ffprobe",
    "offsite": "download refused: host 'localhost'",
    "redirect_offsite": "download refused: host 'localhost'",
    "truncated_always": "download truncated",
    "missing": "download failed: HTTP 404",
}
CLIPS = {"frames": 33, "stride": 2}
CRAWL = {"per_page": 8, "max_videos": 32}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> list[Path]:
    return make_media(tmp_path_factory.mktemp("media"), count=3)


def _config(server: PexelsServer, **overrides) -> dict:
    return full_config(
        {
            "source": {"kind": "pexels", "pexels": server.source_config(**overrides)},
            "ingest": {"min_short_side": 32, "verify_decode": False},
        }
    )


def _run(server: PexelsServer, workdir: Path, caplog, **overrides):
    cfg = _config(server, **overrides)
    catalogue = workdir / "results" / "sources" / "catalogue.parquet"
    with caplog.at_level(logging.INFO):
        cat = build_catalogue(cfg["source"], 2, catalogue)
        accepted, rejected = [], []
        for shard in (0, 1):
            acc, rej = ingest_shard(
                catalogue,
                shard,
                cfg["source"],
                cfg["ingest"],
                CLIPS,
                workdir / f"results/ingest/{shard:05d}.parquet",
                workdir / f"results/ingest/{shard:05d}.rejects.parquet",
            )
            accepted.append(acc)
            rejected.append(rej)
    return cat, pd.concat(accepted), pd.concat(rejected)


def test_faulty_crawl_downloads_good_videos_once_and_rejects_bad_ones(
    tmp_path, media, caplog, monkeypatch
):
    monkeypatch.setenv("PEXELS_API_KEY", KEY)
    videos = fake_videos(500, seed=1)
    # One video per fault kind among the newest good ones: a 32-video crawl meets each (ffprobe
    # of every download is most of this test's time).
    plan = all_faults(videos, seed=1, newest=10, per_kind=1)
    with PexelsServer(media, videos, KEY, plan) as server:
        cat, acc, rej = _run(server, tmp_path, caplog, queries=["cat", "dog", "sea"], **CRAWL)
        api, files = server.api_requests(), server.file_requests()

        # The catalogue: max_videos distinct videos, all passing the filters, with attribution.
        assert len(cat) == CRAWL["max_videos"] and cat["pexels_id"].is_unique
        by_id = {v.id: v for v in videos}
        assert all(by_id[i].good for i in cat["pexels_id"])
        assert plan.duplicate_id in set(cat["pexels_id"])  # in every search, kept once
        assert cat[["author", "author_url", "page_url", "licence", "rendition"]].notna().all().all()
        assert set(cat["found_by"]) == {"popular", "search:cat", "search:dog", "search:sea"}
        assert (cat["rendition_url"].str.endswith(".mp4")).all()
        assert (cat[["rendition_width", "rendition_height"]].min(axis=1) >= 336).all()
        assert (cat[["rendition_width", "rendition_height"]].max(axis=1) <= 640).all()

        # Requests: every page once, plus exactly one retry per transient fault; all with the key.
        assert all(r["auth_ok"] for r in api)
        pages = collections.Counter((r["endpoint"], r["query"], r["page"]) for r in api)
        faulted = [r for r in api if r.get("fault") in RETRIED_PAGE_FAULTS]
        assert {r["fault"] for r in api if r.get("fault")} == {
            "rate_limit",
            "server_error",
            "slow",
            "truncated",
            "malformed",
            "missing_fields",
        }
        assert len(api) == len(pages) + len(faulted)
        assert all(
            n == 1 + sum(1 for r in faulted if (r["endpoint"], r["query"], r["page"]) == p)
            for p, n in pages.items()
        )
        stored = list((tmp_path / "results/sources/pexels/pages").glob("*/0*.json"))
        assert len(stored) == len(pages)
        skipped = [json.loads(p.read_text()) for p in stored]
        assert sum(1 for s in skipped if s["error"]) >= 1  # the malformed page, logged and skipped
        assert "malformed JSON" in caplog.text and "skipped" in caplog.text

        # Downloads: each good video exactly once (complete), each bad one a reject with reason.
        faults = {vid: plan.video_faults.get(vid) for vid in cat["pexels_id"]}
        bad = {vid for vid, f in faults.items() if f and f not in RECOVERABLE_VIDEO_FAULTS}
        assert {f for f in faults.values() if f} >= set(EXPECTED_REASON)  # every kind was met
        assert set(acc["pexels_id"]) == set(cat["pexels_id"]) - bad
        assert set(rej["video_id"]) == {f"pexels-{v}" for v in bad}
        reasons = dict(zip(rej["video_id"], rej["reason"], strict=True))
        for vid in bad:
            assert reasons[f"pexels-{vid}"].startswith(EXPECTED_REASON[faults[vid]]), reasons
        complete = collections.Counter(r["video_id"] for r in files if r.get("complete"))
        assert all(complete[v] == 1 for v in acc["pexels_id"])
        assert all(r["host"] == "127.0.0.1" for r in files)  # never fetched from outside
        assert not [p for p in tmp_path.rglob("*.mp4") if p.name.startswith(".")]  # no partials
        for row in acc.itertuples():
            assert Path(row.path).name == f"{row.pexels_id}-{row.rendition_file_id}.mp4"

        # A rerun replays the stored crawl and skips the finished files: no API request, and
        # file requests only for the videos that failed before.
        n_api, n_files = len(server.api_requests()), len(server.file_requests())
        cfg = _config(server, queries=["cat", "dog", "sea"], **CRAWL)
        catalogue = tmp_path / "results" / "sources" / "catalogue.parquet"
        cat2 = build_catalogue(cfg["source"], 2, catalogue)
        assert len(server.api_requests()) == n_api
        pd.testing.assert_frame_equal(cat2, cat)
        source = make_source(cfg["source"], catalogue.parent)
        got = source.prefetch(cat2.to_dict("records"))
        assert {k for k, v in got.items() if isinstance(v, Path)} == set(acc["video_id"])
        assert {r["video_id"] for r in server.file_requests()[n_files:]} <= bad

    # The key is nowhere: not in a table, a stored page, a log line.
    assert files_containing(tmp_path, KEY) == []
    assert KEY not in caplog.text
