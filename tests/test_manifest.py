"""The per-task manifest job: one process writes the manifest, the report's pictures and the
WebDataset tars of a task, and rebuilding one task plans that task's jobs only."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import snakemake
from senorita.cli import main
from senorita.video import write_frames


@pytest.fixture(scope="module")
def task_tables(tmp_path_factory) -> dict:
    """A task's pairs over two shards (real little videos), as the pair stages leave them."""
    root = tmp_path_factory.mktemp("manifest")
    dataset = root / "dataset"
    rng = np.random.default_rng(0)
    rows = []
    for shard in (0, 1):
        for k in range(2):
            pid = f"pair{shard}{k}"
            frames = rng.integers(0, 256, (9, 32, 48, 3), dtype=np.uint8)
            write_frames(dataset / "deblur" / f"{pid}_org.mp4", frames, 8.0, preset="ultrafast")
            write_frames(dataset / "deblur" / f"{pid}.mp4", frames[::-1], 8.0, preset="ultrafast")
            rows.append(
                {
                    "pair_id": pid,
                    "task": "deblur",
                    "shard": shard,
                    "instruction": f"Sharpen video {k}.",
                    "source_path": f"deblur/{pid}_org.mp4",
                    "target_path": f"deblur/{pid}.mp4",
                    "fps": 8.0,
                    "frames": 9,
                }
            )
    pattern = str(root / "pairs" / "{shard}.parquet")
    for shard in (0, 1):
        path = Path(pattern.format(shard=f"{shard:05d}"))
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([r for r in rows if r["shard"] == shard]).to_parquet(path, index=False)
    return {"root": root, "dataset": dataset, "pattern": pattern}


def test_one_manifest_job_writes_what_the_three_subcommands_wrote(task_tables, tmp_path):
    t = task_tables
    manifest = t["dataset"] / "deblur" / "manifest.parquet"
    joined = tmp_path / "joined"
    common = ["--shards", "2", "--pattern", t["pattern"], "--out", str(manifest)]
    code = main(
        ["manifest", *common, "--task", "deblur", "--dataset", str(t["dataset"]),
         "--sheet", str(joined / "sheet.png"), "--gif", str(joined / "preview.gif"),
         "--pairs", "2", "--webdataset", str(joined / "tars")]
    )  # fmt: skip
    assert code == 0
    first = manifest.read_bytes()
    # The same three steps as separate subcommands (the three jobs per task before).
    separate = tmp_path / "separate"
    assert main(["manifest", *common]) == 0
    assert manifest.read_bytes() == first
    assert main(
        ["preview", "--manifest", str(manifest), "--dataset", str(t["dataset"]), "--pairs", "2",
         "--sheet", str(separate / "sheet.png"), "--gif", str(separate / "preview.gif")]
    ) == 0  # fmt: skip
    assert main(
        ["webdataset", "--manifest", str(manifest), "--dataset", str(t["dataset"]),
         "--out", str(separate / "tars")]
    ) == 0  # fmt: skip
    for name in ("sheet.png", "preview.gif"):
        assert (joined / name).read_bytes() == (separate / name).read_bytes(), name
    tars = sorted(p.name for p in (joined / "tars").iterdir())
    assert tars == ["deblur-00000.tar", "deblur-00001.tar"]
    assert tars == sorted(p.name for p in (separate / "tars").iterdir())
    for name in tars:
        assert (joined / "tars" / name).read_bytes() == (separate / "tars" / name).read_bytes()
    # Half a request is a clear error, not a silent skip.
    assert main(["manifest", *common, "--sheet", str(tmp_path / "s.png")]) == 1


def summary(work: Path, *args: str) -> dict[str, tuple[str, str]]:
    """``snakemake --summary``: every output of the DAG -> (its rule, its plan)."""
    lines = snakemake(work, "--summary", *args).stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    rows = [line.split("\t") for line in lines[start + 1 :] if "\t" in line]
    return {row[0]: (row[2], row[-1]) for row in rows}


def remade(work: Path, *args: str) -> dict[str, str]:
    """The outputs a run with ``args`` would make, and the rule of each."""
    return {out: rule for out, (rule, plan) in summary(work, *args).items() if plan != "no update"}


def test_rebuilding_one_task_plans_only_that_tasks_jobs(tmp_path):
    """The DAG's shape, without running a job: every output of the default workflow stands in as
    an empty file (Snakemake's --touch then records them as made, in order), and each plan below
    must hold one task's jobs, plus the run-level card where a manifest changes."""
    work = tmp_path / "run"
    outputs = summary(work, "all")
    assert outputs["dataset/webdataset/deblur"] == ("manifest", "update pending")
    assert outputs["results/report/deblur/preview.gif"][0] == "manifest"
    assert outputs["results/report/filter_pass_rates.html"][0] == "dataset_card"
    for out in outputs:
        path = work / out
        if path.suffix:  # every file output has one; directories (tars, models) none
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            path.mkdir(parents=True, exist_ok=True)
    snakemake(work, "--touch", "--cores", "1", "all")
    assert remade(work, "all") == {}

    # `snakemake task_deblur --forcerun manifest`: deblur's manifest job, which also remakes its
    # report pictures and tars, and nothing of another task.
    deblur = {
        "dataset/deblur/manifest.parquet": "manifest",
        "results/report/deblur/contact_sheet.png": "manifest",
        "results/report/deblur/preview.gif": "manifest",
        "results/report/deblur/judge_lowest.png": "manifest",
        "dataset/webdataset/deblur": "manifest",
    }
    assert remade(work, "task_deblur", "--forcerun", "manifest") == deblur
    # New pairs for one shard of deblur (new content: Snakemake compares input checksums): its
    # scores and its manifest job, and the run's card and tables.
    (work / "results/pairs/deblur/00001.parquet").write_bytes(b"new pairs")
    assert remade(work, "all") == {
        "results/filters/deblur/scores.parquet": "filter_scores",
        "results/filters/deblur/judge.parquet": "judge_scores",
        **deblur,
        "dataset/README.md": "dataset_card",
        "dataset/rejects.parquet": "dataset_card",
        "results/report/pairs_per_task.html": "dataset_card",
        "results/report/filter_pass_rates.html": "dataset_card",
        "results/report/rejects.html": "dataset_card",
        "results/report/judge.html": "dataset_card",
    }
    shutil.rmtree(work)
