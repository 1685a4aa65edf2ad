"""Benchmark the Pexels crawler against the loopback server (no key, no network).

Prints two tables:
- API requests per 1,000 videos kept, for a few crawl shapes. The floor is 1000 / 80 = 12.5
  (every request a full page of new, usable videos); duplicates across queries and videos the
  filters drop push it up.
- Download throughput of the crawler's downloader (streamed to disk, hashed, ffprobe-verified,
  renamed) against the raw rate of the same server measured in the same run (the same files
  fetched into memory by a bare requests session with the same number of threads), and the ratio.

    .venv/bin/python benchmarks/pexels_crawl.py [--videos 4000] [--downloads 48] [--workers 4]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from senorita.sources.download import Downloader  # noqa: E402
from senorita.sources.pexels import PexelsSource  # noqa: E402
from senorita.sources.pexels_api import make_session  # noqa: E402
from senorita.testing.pexels_server import PexelsServer, Plan, fake_videos, make_media  # noqa: E402

KEY = "benchmark-key"


def _cfg(server: PexelsServer, **overrides) -> dict:
    cfg = {"source": {"kind": "pexels", "pexels": server.source_config(**overrides)}}
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"))
    return cfg["source"]["pexels"]


def crawl_table(server: PexelsServer, work: Path, max_videos: int) -> list[tuple]:
    shapes = [
        ("popular only", {"popular": True, "queries": []}),
        (
            "popular + 5 queries",
            {"popular": True, "queries": ["cat", "dog", "sea", "city", "forest"]},
        ),
        (
            "5 queries, no popular",
            {"popular": False, "queries": ["cat", "dog", "sea", "city", "forest"]},
        ),
    ]
    rows = []
    for name, shape in shapes:
        folder = work / name.replace(" ", "_").replace("+", "and").replace(",", "")
        cfg = _cfg(server, max_videos=max_videos, per_page=80, **shape)
        before = len(server.api_requests())
        started = time.perf_counter()
        result = PexelsSource(cfg, folder, key=KEY).crawl()
        seconds = time.perf_counter() - started
        made = len(server.api_requests()) - before
        kept = len(result.videos)
        rows.append(
            (name, kept, made, 1000 * made / kept, result.duplicates, result.filtered, seconds)
        )
        again = PexelsSource(cfg, folder, key=KEY).crawl()  # the finished crawl, replayed
        assert len(server.api_requests()) - before == made and len(again.videos) == kept
    return rows


def download_table(server: PexelsServer, work: Path, n: int, workers: int) -> list[tuple]:
    ids = sorted(v.id for v in server.videos if v.good)[:n]
    urls = [f"{server.base}/video-files/{vid}/{vid * 10}.mp4" for vid in ids]

    session = make_session(workers)

    def raw(url: str) -> int:
        with session.get(url, timeout=30) as resp:
            resp.raise_for_status()
            return len(resp.content)

    raw(urls[0])  # warm the pool
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        raw_bytes = sum(pool.map(raw, urls))
    raw_s = time.perf_counter() - started

    cfg = _cfg(server, download={"workers": workers})
    downloader = Downloader(cfg["download"], (5.0, 30.0), (0.1, 1.0))
    dest = work / "downloads"
    jobs = {str(vid): (url, dest / f"{vid}.mp4") for vid, url in zip(ids, urls, strict=True)}
    started = time.perf_counter()
    results = downloader.fetch_many(jobs)
    ours_s = time.perf_counter() - started
    failed = [k for k, v in results.items() if isinstance(v, str)]
    assert not failed, failed
    ours_bytes = sum(p.stat().st_size for p in dest.glob("*.mp4"))
    assert ours_bytes == raw_bytes
    mb = 1 << 20
    return [
        (
            "loopback server, raw (bare GET into memory)",
            n,
            raw_bytes / mb,
            raw_s,
            raw_bytes / mb / raw_s,
            n / raw_s,
        ),
        (
            "crawler downloader (stream, hash, ffprobe, rename)",
            n,
            ours_bytes / mb,
            ours_s,
            ours_bytes / mb / ours_s,
            n / ours_s,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=4000, help="videos the server knows")
    parser.add_argument("--max-videos", type=int, default=2000, help="max_videos of each crawl")
    parser.add_argument("--downloads", type=int, default=48)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--sizes",
        default="640x360,1920x1080",
        help="served file sizes, one download run each (comma separated)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="pexels-bench-"))
    downloads = {}
    try:
        for i, size in enumerate(args.sizes.split(",")):
            width, height = (int(x) for x in size.split("x"))
            media = make_media(work / "media", 3, width, height, seconds=4.0)
            with PexelsServer(media, fake_videos(args.videos), KEY, Plan()) as server:
                if i == 0:
                    crawl = crawl_table(server, work, args.max_videos)
                downloads[size] = download_table(server, work / size, args.downloads, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"## API requests per 1,000 videos kept (per_page 80; floor 12.5; server knows "
        f"{args.videos} videos, max_videos {args.max_videos})\n"
    )
    print(
        "| crawl | kept | API requests | requests / 1,000 kept | vs floor | duplicates "
        "| filtered out | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, kept, made, per_k, dup, filt, secs in crawl:
        print(
            f"| {name} | {kept} | {made} | {per_k:.2f} | {per_k / 12.5:.2f}x | {dup} | {filt} "
            f"| {secs:.2f} |"
        )
    print(
        f"\n## Download throughput ({args.downloads} files per size, {args.workers} workers, "
        f"{os.cpu_count()} CPUs; raw and crawler measured back to back in this run)\n"
    )
    print("| files of | path | MiB | seconds | MiB/s | files/s | ratio to raw |")
    print("|---|---|---|---|---|---|---|")
    for size, (raw, ours) in downloads.items():
        for name, _, mib, secs, rate, per_s in (raw, ours):
            print(
                f"| {size} | {name} | {mib:.1f} | {secs:.2f} | {rate:.1f} | {per_s:.1f} "
                f"| {rate / raw[4]:.2f} |"
            )


if __name__ == "__main__":
    main()
