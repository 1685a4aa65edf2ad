"""The Snakemake report, the versions file and the WebDataset export of the embedded default."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile

import pandas as pd
import pytest
import webdataset as wds
from PIL import Image

from conftest import OPERATOR_TASKS, snakemake
from senorita.tasks import task_ids


@pytest.fixture(scope="module")
def report_zip(demo_run):
    snakemake(demo_run, "--report", "report.zip")
    return demo_run / "report.zip"


def test_report_has_a_contact_sheet_and_preview_per_task(report_zip, demo_run):
    with zipfile.ZipFile(report_zip) as zf:
        names = zf.namelist()
        sheets = [n for n in names if n.endswith("contact_sheet.png")]
        gifs = [n for n in names if n.endswith("preview.gif")]
        assert len(sheets) == len(gifs) == len(task_ids())  # every built task
        for name in sheets:
            with zf.open(name) as fh:
                img = Image.open(fh)
                img.load()
            # Three sample pairs, each a block of source row, target row and a text line.
            assert img.height > 3 * 2 * 100 and img.width > 4 * 150
        lengths = {
            int(pd.read_parquet(demo_run / "dataset" / t / "manifest.parquet")["frames"].iloc[0])
            for t in task_ids()
        }
        assert lengths == {33, 9}  # clips; the demo's experts generate 9 frames
        for name in gifs:
            with zf.open(name) as fh:
                assert Image.open(fh).n_frames in lengths
        table = next(n for n in names if n.endswith("pairs_per_task.html"))
        html = zf.read(table).decode()
        for task in task_ids():
            n = len(pd.read_parquet(demo_run / "dataset" / task / "manifest.parquet"))
            # The task's own row: "#", task, direction, then its pair count.
            row = re.search(rf"<td>{task}</td>\s*<td>[^<]*</td>\s*<td>(\d+)</td>", html)
            assert row and int(row.group(1)) == n, task
        assert any(n.endswith("rejects.html") for n in names)
        rates = zf.read(next(n for n in names if n.endswith("filter_pass_rates.html"))).decode()
        for task in task_ids():
            assert f"<td>{task}</td>" in rates
        assert "<th>quality</th>" in rates and "<th>kept</th>" in rates
        versions = json.loads(zf.read(next(n for n in names if n.endswith("versions.json"))))
    assert versions["code_version"].startswith("0.1.0")
    assert versions["packages"]["snakemake"] == "9.27.1"
    assert versions["config"]["clips"]["frames"] == 33
    assert "ffmpeg version" in versions["ffmpeg"]


def test_report_renders_in_a_real_browser(demo_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (make test installs it with apt where it can)")
    snakemake(demo_run, "--report", str(tmp_path / "report.html"))
    shot = tmp_path / "shot.png"
    args = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1400,1000",
        "--virtual-time-budget=8000",
    ]
    subprocess.run(
        [*args, f"--screenshot={shot}", f"file://{tmp_path / 'report.html'}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [*args, "--dump-dom", f"file://{tmp_path / 'report.html'}"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    # What the report's app drew: the page's scripts carry the same words as data, so they are
    # cut out, and only the app's element counts (still empty if the app never rendered).
    app = re.sub(r"<script\b.*?</script>", "", dom, flags=re.S).split('id="app"', 1)[1]
    for text in ["Tasks", "Dataset", "Provenance", "Señorita-style video-editing dataset"]:
        assert text in app, text
    img = Image.open(shot).convert("L")
    assert img.size == (1400, 1000)
    lo, hi = img.getextrema()
    assert hi - lo > 100  # something was drawn, not a blank page
    assert len(img.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20


def test_webdataset_shards_read_back_the_same_pairs(demo_run):
    for task in OPERATOR_TASKS:
        manifest = pd.read_parquet(demo_run / "dataset" / task / "manifest.parquet")
        tars = sorted((demo_run / "dataset" / "webdataset" / task).glob("*.tar"))
        assert len(tars) == manifest["shard"].nunique()
        seen = {}
        for sample in wds.WebDataset([str(t) for t in tars], shardshuffle=False):
            row = json.loads(sample["json"])
            seen[sample["__key__"]] = row
            src = (demo_run / "dataset" / row["source_path"]).read_bytes()
            tgt = (demo_run / "dataset" / row["target_path"]).read_bytes()
            assert sample["source.mp4"] == src and sample["target.mp4"] == tgt
        assert set(seen) == set(manifest["pair_id"])
        for row in manifest.to_dict("records"):
            assert seen[row["pair_id"]]["instruction"] == row["instruction"]
