"""Kill the crawl and the downloads mid-way (SIGKILL to a real process), then run again."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from pexels_helpers import KEY, files_containing, full_config

from senorita.testing.pexels_server import PexelsServer, Plan, fake_videos, make_media

BIN = Path(sys.executable).parent
CLIPS = json.dumps({"frames": 33, "stride": 2})
INGEST = json.dumps({"min_duration_s": 1.0, "min_short_side": 32, "verify_decode": False})


def _env() -> dict[str, str]:
    return {**os.environ, "PEXELS_API_KEY": KEY, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def _catalogue_cmd(source: dict, out: Path) -> list[str]:
    return [
        str(BIN / "senorita"),
        "catalogue",
        "--source",
        json.dumps(source),
        "--shards",
        "2",
        "--out",
        str(out),
    ]


def _ingest_cmd(source: dict, catalogue: Path, shard: int) -> list[str]:
    folder = catalogue.parent.parent / "ingest"
    return [
        str(BIN / "senorita"),
        "ingest",
        "--catalogue",
        str(catalogue),
        "--shard",
        str(shard),
        "--source",
        json.dumps(source),
        "--params",
        INGEST,
        "--clips",
        CLIPS,
        "--out",
        str(folder / f"{shard:05d}.parquet"),
        "--rejects",
        str(folder / f"{shard:05d}.rejects.parquet"),
    ]


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it finished first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the process finished before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting to kill the process"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _stored_pages(root: Path) -> set[tuple[str, int]]:
    out = set()
    for path in root.glob("*/0*.json"):
        record = json.loads(path.read_text())
        out.add((record["endpoint"], record["page"]))
    return out


def _label(r: dict) -> tuple[str, int]:
    return ("popular" if r["endpoint"] == "popular" else f"search:{r['query']}", r["page"])


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> list[Path]:
    return make_media(tmp_path_factory.mktemp("media"), count=3)


# A real stage process, SIGKILLed: with the other kill tests in `make test`, not the fast loop.
@pytest.mark.e2e
def test_killed_crawl_and_downloads_resume_without_repeating_work(tmp_path, media):
    videos = fake_videos(300, seed=2)
    plan = Plan(page_delay_s=0.25)
    with PexelsServer(media, videos, KEY, plan) as server:
        source = {
            "kind": "pexels",
            "pexels": server.source_config(
                queries=["cat", "dog", "sea"], per_page=10, max_videos=90, download={"workers": 2}
            ),
        }
        source = full_config({"source": source})["source"]
        catalogue = tmp_path / "results" / "sources" / "catalogue.parquet"
        pages_dir = catalogue.parent / "pexels" / "pages"
        log_dir = tmp_path / "logs"
        log_dir.mkdir()

        # 1. Crawl; kill it once four pages have been answered.
        with open(log_dir / "crawl1.log", "w") as err:
            proc = subprocess.Popen(_catalogue_cmd(source, catalogue), env=_env(), stderr=err)
            _kill_when(
                proc, lambda: sum(r.get("status") == 200 for r in server.api_requests()) >= 4
            )
        stored_at_kill = _stored_pages(pages_dir)
        asked_before = len(server.api_requests())
        assert stored_at_kill and not catalogue.exists()

        # 2. Run it again to the end.
        with open(log_dir / "crawl2.log", "w") as err:
            subprocess.run(
                _catalogue_cmd(source, catalogue), env=_env(), stderr=err, check=True, timeout=120
            )
        later = server.api_requests()[asked_before:]
        asked_again = {_label(r) for r in later}
        assert not asked_again & stored_at_kill  # no stored page is asked for twice
        counts = collections.Counter(_label(r) for r in server.api_requests())
        assert sum(n - 1 for n in counts.values()) <= 1  # at most the page in flight at the kill
        assert len(_stored_pages(pages_dir)) == len(counts)

        # 3. A finished crawl is not repeated: its rerun asks nothing.
        n_api = len(server.api_requests())
        cat = pd.read_parquet(catalogue)
        with open(log_dir / "crawl3.log", "w") as err:
            subprocess.run(
                _catalogue_cmd(source, catalogue), env=_env(), stderr=err, check=True, timeout=120
            )
        assert len(server.api_requests()) == n_api
        pd.testing.assert_frame_equal(cat, pd.read_parquet(catalogue))
        assert len(cat) == 90

        # The resumed crawl found what an uninterrupted one finds.
        plan.page_delay_s = 0.0
        fresh = tmp_path / "fresh" / "sources" / "catalogue.parquet"
        subprocess.run(
            _catalogue_cmd(source, fresh), env=_env(), check=True, timeout=120, capture_output=True
        )
        pd.testing.assert_frame_equal(cat, pd.read_parquet(fresh))

        # 4. Download shard 0; kill it after three files are finished.
        plan.file_delay_s = 0.15
        shard = cat[cat["shard"] == 0]
        folder = catalogue.parent / "pexels" / "videos" / "00000"
        n_files = len(server.file_requests())
        with open(log_dir / "ingest1.log", "w") as err:
            proc = subprocess.Popen(_ingest_cmd(source, catalogue, 0), env=_env(), stderr=err)
            _kill_when(proc, lambda: len(list(folder.glob("[0-9]*.mp4"))) >= 3)
        finished = {p.name for p in folder.glob("[0-9]*.mp4")}
        assert 3 <= len(finished) < len(shard)
        before = len(server.file_requests())

        with open(log_dir / "ingest2.log", "w") as err:
            subprocess.run(
                _ingest_cmd(source, catalogue, 0), env=_env(), stderr=err, check=True, timeout=120
            )
        asked_again = {r["video_id"] for r in server.file_requests()[before:]}
        assert asked_again  # the unfinished ones were fetched ...
        assert not asked_again & {int(n.split("-")[0]) for n in finished}  # ... the rest not
        done = collections.Counter(
            r["video_id"] for r in server.file_requests()[n_files:] if r.get("complete")
        )
        assert set(done) == set(shard["pexels_id"])
        assert sum(n - 1 for n in done.values()) <= 2  # only those in flight (2 workers)
        accepted = pd.read_parquet(catalogue.parent.parent / "ingest" / "00000.parquet")
        assert set(accepted["pexels_id"]) == set(shard["pexels_id"])
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # partials cleaned

    assert files_containing(tmp_path, KEY) == []
