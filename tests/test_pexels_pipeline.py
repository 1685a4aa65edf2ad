"""The whole workflow with ``source: pexels`` against the loopback server, and the key check."""

from __future__ import annotations

import pandas as pd
import pytest
from pexels_helpers import KEY, files_containing

from conftest import only_tasks, snakemake
from senorita.testing.pexels_server import PexelsServer, Plan, fake_videos, make_media


@pytest.mark.slow
def test_pipeline_end_to_end_with_pexels(tmp_path):
    media = make_media(tmp_path / "media", count=2, width=640, height=360, seconds=3.0)
    videos = fake_videos(120, seed=3)
    newest = sorted((v.id for v in videos if v.good), reverse=True)
    plan = Plan(video_faults={newest[1]: "corrupt"})  # one bad download, to see a reject
    workdir = tmp_path / "run"
    with PexelsServer(media, videos, KEY, plan) as server:
        config = {
            "source": {
                "kind": "pexels",
                "pexels": server.source_config(queries=["cat"], max_videos=4, per_page=4),
            },
            "encode": {"preset": "ultrafast"},
            # One task of each kind of maker before the experts (an operator, a control-map
            # model, the masks models): every stage that could leak the key, in a minute.
            "tasks": only_tasks("deblur", "depth_detection", "grounding"),
            "export": {"webdataset": False},
        }
        # -p: the shell commands are printed, so the check below covers them too.
        env = {"PEXELS_API_KEY": KEY}
        proc = snakemake(workdir, "--cores", "2", "-p", "all", config=config, env=env)
        api = server.api_requests()
    assert api and all(r["auth_ok"] for r in api)

    catalogue = pd.read_parquet(workdir / "results/sources/catalogue.parquet")
    assert len(catalogue) == 4
    manifests = list((workdir / "dataset").glob("*/manifest.parquet"))
    assert manifests
    pairs = pd.concat([pd.read_parquet(m) for m in manifests])
    assert len(pairs) > 0
    # Attribution reaches every pair row, and matches the catalogue.
    cols = ["pexels_id", "rendition", "author", "author_url", "page_url", "licence"]
    assert pairs[cols].notna().all().all()
    expected = catalogue.set_index("video_id")
    for row in pairs.itertuples():
        assert row.pexels_id == expected.loc[row.video_id, "pexels_id"]
        assert row.page_url == expected.loc[row.video_id, "page_url"]
        assert row.rendition == expected.loc[row.video_id, "rendition"]
    corrupt = f"pexels-{newest[1]}"
    assert corrupt in set(catalogue["video_id"]) and corrupt not in set(pairs["video_id"])
    rejects = pd.read_parquet(workdir / "dataset/rejects.parquet")
    (reason,) = rejects.loc[rejects["video_id"] == corrupt, "reason"]  # exactly one reject
    assert reason.startswith("download corrupt")
    assert "Pexels License" in (workdir / "dataset/README.md").read_text()

    # The key is in nothing the run wrote, nor in what it printed.
    assert files_containing(workdir, KEY) == []
    assert KEY not in proc.stdout + proc.stderr


def test_missing_key_stops_before_any_job(tmp_path, monkeypatch):
    monkeypatch.delenv("PEXELS_API_KEY", raising=False)
    proc = snakemake(
        tmp_path, "--cores", "1", "all", check=False, config={"source": {"kind": "pexels"}}
    )
    assert proc.returncode != 0
    assert "PEXELS_API_KEY is not set" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
