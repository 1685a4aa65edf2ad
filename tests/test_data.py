"""The dataset as its users consume it: the Hub-ready folder (card front matter read by
``datasets``) and the training loaders of ``senorita.data``, on a small dataset folder written
here in the pipeline's layout (real H.264 files; each frame's grey level tells its index)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from senorita.data import PairDataset, PairSampler, collate, pair_shards, shard_urls
from senorita.export import export_task
from senorita.hub import front_matter, hub_licence, size_category
from senorita.manifest import build_manifest
from senorita.tasks import all_tasks, get
from senorita.video import write_frames

H, W, T = 32, 48, 12
# task -> (pairs, kept): deblur is the big task, object_removal the small one.
LAYOUT = {"deblur": (6, 4), "object_removal": (3, 2)}


def level(i: int, target: bool) -> int:
    """The grey level of frame i (targets are offset so source and target differ)."""
    return 10 * i + (5 if target else 0)


def write_dataset(root: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for task, (n, kept) in LAYOUT.items():
        rows = []
        for k in range(n):
            pair = f"{task[:3]}{k:04d}"
            shard = k % 2
            paths = {}
            for side, target in (("source", False), ("target", True)):
                name = f"{pair}.mp4" if target else f"{pair}_org.mp4"
                rel = f"{task}/{shard:05d}/{name}"
                frames = np.stack(
                    [np.full((H, W, 3), level(i, target), np.uint8) for i in range(T)]
                )
                write_frames(root / rel, frames, fps=8.0)
                paths[side] = rel
            rows.append(
                {
                    "pair_id": pair,
                    "task": task,
                    "instruction": f"{task} instruction {k}",
                    "source_path": paths["source"],
                    "target_path": paths["target"],
                    "shard": shard,
                    "frames": T,
                    "fps": 8.0,
                    "licence": "CC0-1.0 (generated)",
                    "pexels_id": None,
                    "kept": k < kept,
                    "filter_reason": None if k < kept else "quality: sharpness 1 < 10",
                }
            )
        shards = root.parent / f"{root.name}-shards" / task
        shards.mkdir(parents=True, exist_ok=True)
        df = pd.DataFrame(rows)
        paths = []
        for shard, part in df.groupby("shard"):
            path = shards / f"{shard:05d}.parquet"
            part.to_parquet(path)
            paths.append(path)
        tables[task] = build_manifest(paths, root / task / "manifest.parquet")
    counts = {t: len(df) for t, df in tables.items()}
    kept = {t: int(df["kept"].sum()) for t, df in tables.items()}
    (root / "README.md").write_text(
        front_matter(counts, kept, {"CC0-1.0 (generated)": 9}) + "# x\n"
    )
    return tables


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "dataset"
    write_dataset(root)
    for task in LAYOUT:
        export_task(root / task / "manifest.parquet", root, root / "webdataset" / task)
    return root


def grey(video: torch.Tensor) -> list[float]:
    return video.float().mean(dim=(1, 2, 3)).tolist()


def test_items_hold_the_frames_asked_for(folder):
    ds = PairDataset(folder, frames=3, stride=4)
    assert len(ds) == 6  # kept only: 4 + 2
    item = ds[0]
    assert item["source"].shape == (3, 3, H, W) and item["source"].dtype == torch.uint8
    # Frames 0, 4 and 8, source and target told apart by their grey level.
    assert grey(item["source"]) == pytest.approx([level(i, False) for i in (0, 4, 8)], abs=2)
    assert grey(item["target"]) == pytest.approx([level(i, True) for i in (0, 4, 8)], abs=2)
    row = ds.rows.iloc[0]
    assert item["instruction"] == row["instruction"] and item["pair_id"] == row["pair_id"]
    assert item["meta"]["licence"] == "CC0-1.0 (generated)" and item["meta"]["kept"] is True
    assert item["meta"]["pexels_id"] is None  # missing values as None, not NaN/NA


def test_all_frames_resize_and_filters(folder):
    full = PairDataset(folder)[0]
    assert full["source"].shape == (T, 3, H, W)
    small = PairDataset(folder, frames=2, size=(16, 20))[0]
    assert small["source"].shape == (2, 3, 16, 20)
    assert grey(small["source"]) == pytest.approx([level(0, False), level(1, False)], abs=2)
    everything = PairDataset(folder, kept_only=False)
    assert len(everything) == 9 and (~everything.rows["kept"]).sum() == 3
    one = PairDataset(folder, tasks=["object_removal"])
    assert set(one.tasks) == {"object_removal"} and len(one) == 2


def test_bad_requests_name_what_is_wrong(folder, tmp_path):
    with pytest.raises(ValueError, match=r"no manifest for task.*upscale"):
        PairDataset(folder, tasks=["upscale"])
    with pytest.raises(
        ValueError, match=r"deb0000 \(deblur\): 12 frames, too few for 7 at stride 2"
    ):
        PairDataset(folder, frames=7, stride=2)[0]
    with pytest.raises(ValueError, match=r"no <task>/manifest\.parquet"):
        PairDataset(tmp_path)
    broken = tmp_path / "copy"
    shutil.copytree(folder, broken)
    victim = PairDataset(broken).rows.iloc[0]
    (broken / victim["target_path"]).write_bytes(b"not a video")
    with pytest.raises(ValueError, match=f"{victim['pair_id']} target .*cannot decode"):
        PairDataset(broken)[0]


def test_the_plain_sampler_is_a_seeded_permutation_per_epoch(folder):
    ds = PairDataset(folder, kept_only=False)
    sampler = PairSampler(ds, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(9))
    assert list(PairSampler(ds, seed=3)) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(9)) and second != first
    assert list(PairSampler(ds, seed=4)) != first
    longer = list(PairSampler(ds, seed=3, num_samples=20))
    assert len(longer) == 20 and Counter(longer[:18]) == Counter(list(range(9)) * 2)


def test_a_mix_by_share_draws_tasks_in_proportion(folder):
    ds = PairDataset(folder, kept_only=False)
    draws = list(
        PairSampler(ds, seed=0, shares={"deblur": 1, "object_removal": 3}, num_samples=4000)
    )
    tasks = Counter(ds.tasks[draws])
    assert tasks["object_removal"] / 4000 == pytest.approx(0.75, abs=0.03)
    # Within a task, every item comes once before any comes twice.
    removal = [i for i in draws if ds.tasks[i] == "object_removal"]
    assert sorted(removal[:3]) == sorted(np.flatnonzero(ds.tasks == "object_removal").tolist())
    # Señorita-2M's shares, renormalised over the tasks present.
    mix = list(PairSampler(ds, seed=0, shares="senorita2m", num_samples=4000))
    expect = get("deblur").share / (get("deblur").share + get("object_removal").share)
    assert Counter(ds.tasks[mix])["deblur"] / 4000 == pytest.approx(expect, abs=0.03)
    with pytest.raises(ValueError, match=r"no share for task.*object_removal"):
        PairSampler(ds, shares={"deblur": 1})


def test_a_loader_with_workers_batches_every_kept_pair_once(folder):
    ds = PairDataset(folder, frames=4, stride=2)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, sampler=PairSampler(ds, seed=0), collate_fn=collate, num_workers=2
    )
    seen = []
    for batch in loader:
        assert batch["source"].shape[1:] == (4, 3, H, W) and batch["target"].dtype == torch.uint8
        assert len(batch["instruction"]) == len(batch["pair_id"]) == batch["source"].shape[0]
        for inst, task in zip(batch["instruction"], batch["task"], strict=True):
            assert inst.startswith(task)
        seen += batch["pair_id"]
    assert sorted(seen) == sorted(ds.rows["pair_id"])
    with pytest.raises(ValueError, match="mixes frame shapes"):
        collate([PairDataset(folder, frames=2)[0], PairDataset(folder, frames=3)[0]])


def test_the_webdataset_stream_gives_the_same_items(folder):
    assert len(shard_urls(folder)) == 4  # two shards per task
    stream = pair_shards(folder, frames=3, stride=2, seed=0, shuffle=4)
    loader = torch.utils.data.DataLoader(stream, batch_size=2, collate_fn=collate, num_workers=2)
    items = {}
    for batch in loader:
        for k, pair in enumerate(batch["pair_id"]):
            items[pair] = batch["target"][k]
    ds = PairDataset(folder, frames=3, stride=2)
    assert sorted(items) == sorted(ds.rows["pair_id"])  # kept only, each once across workers
    for i in range(len(ds)):
        assert torch.equal(items[ds.rows["pair_id"][i]], ds[i]["target"])
    every = {i["pair_id"] for i in pair_shards(folder, tasks=["deblur"], kept_only=False)}
    assert len(every) == 6


def test_hub_licences_and_sizes():
    assert hub_licence("CC0-1.0 (generated)") == ("cc0-1.0", None, None)
    assert hub_licence("Pexels License (https://www.pexels.com/license/)") == (
        "other",
        "pexels-license",
        "https://www.pexels.com/license/",
    )
    assert hub_licence(None) == hub_licence("unknown") == ("unknown", None, None)
    assert hub_licence("Our lab's terms (https://lab.example/terms)") == (
        "other",
        "our-lab-s-terms",
        "https://lab.example/terms",
    )
    assert [size_category(n) for n in (0, 999, 1000, 2_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1M<n<10M",
    ]


def test_the_front_matter_is_plain_yaml_the_hub_reads():
    text = front_matter(
        {"object_removal": 3, "deblur": 5, "upscale": 2, "colorization": 0},
        {"object_removal": 1, "deblur": 5, "upscale": 0, "colorization": 0},
        {"Pexels License (https://www.pexels.com/license/)": 6, "CC0-1.0 (generated)": 2},
    )
    assert text.startswith("---\n") and text.endswith("\n---\n")
    assert "&id" not in text  # no YAML anchors: each config stands alone
    meta = yaml.safe_load(text.strip("-\n"))
    assert meta["license"] == ["cc0-1.0", "other"] and meta["license_name"] == "pexels-license"
    assert meta["size_categories"] == ["n<1K"]
    names = [c["config_name"] for c in meta["configs"]]
    # upscale has no kept pair (datasets cannot give an empty split); colorization no pair.
    assert names == ["all", "object_removal", "deblur", "unfiltered"]
    assert [c for c in meta["configs"] if c.get("default")] == [meta["configs"][0]]
    assert meta["configs"][-1]["data_files"][0]["path"] == [
        "object_removal/manifest.parquet",
        "deblur/manifest.parquet",
        "upscale/manifest.parquet",
    ]
    # Nothing kept: the unfiltered view is the default.
    none_kept = yaml.safe_load(front_matter({"deblur": 2}, {"deblur": 0}, {}).strip("-\n"))
    assert none_kept["configs"] == [
        {
            "config_name": "unfiltered",
            "data_files": [{"split": "train", "path": ["deblur/manifest.parquet"]}],
            "default": True,
        }
    ]
    with pytest.raises(ValueError, match="collide"):
        front_matter({"all": 1}, {"all": 1}, {})


def test_datasets_loads_every_config_from_a_copy(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "elsewhere" / "my-dataset"
    shutil.copytree(folder, copy)
    manifests = {t: pd.read_parquet(copy / t / "manifest.parquet") for t in LAYOUT}
    for task, df in manifests.items():
        rows = datasets.load_dataset(str(copy), task, split="train")
        assert sorted(rows["pair_id"]) == sorted(df.loc[df["kept"], "pair_id"])
        for rel in [*rows["source_path"], *rows["target_path"]]:
            assert (copy / rel).is_file()  # paths resolve inside the copy
    default = datasets.load_dataset(str(copy), split="train")  # config "all"
    assert len(default) == 6 and all(default["kept"])
    audit = datasets.load_dataset(str(copy), "unfiltered", split="train")
    assert len(audit) == 9 and sum(audit["kept"]) == 6
    assert json.dumps(audit.features.to_dict())  # one schema across tasks


def test_the_demo_dataset_loads_as_a_hub_repository(demo_run, tmp_path, monkeypatch):
    """What a user does first: load the finished folder (copied elsewhere) with ``datasets``."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "moved" / "senorita-demo"
    shutil.copytree(demo_run / "dataset", copy, ignore=shutil.ignore_patterns("webdataset"))
    meta = yaml.safe_load((copy / "README.md").read_text().split("---\n")[1])
    manifests = {p.parent.name: pd.read_parquet(p) for p in copy.glob("*/manifest.parquet")}
    assert len(manifests) == 18
    kept = [t.id for t in all_tasks() if t.id in manifests and manifests[t.id]["kept"].any()]
    assert [c["config_name"] for c in meta["configs"]] == ["all", *kept, "unfiltered"]
    for task in kept:
        df = manifests[task]
        rows = datasets.load_dataset(str(copy), task, split="train")
        assert sorted(rows["pair_id"]) == sorted(df.loc[df["kept"], "pair_id"]), task
        assert set(rows["task"]) <= {task}
    default = datasets.load_dataset(str(copy), split="train")
    assert "label" not in default.column_names  # pairs, not a video-classification folder
    assert len(default) == sum(int(df["kept"].sum()) for df in manifests.values()) > 0
    assert len(datasets.load_dataset(str(copy), "unfiltered", split="train")) == sum(
        len(df) for df in manifests.values()
    )
    # The loader decodes a pair of every task with a kept pair, at the manifest's sizes.
    loader = PairDataset(copy, frames=2)
    for task in dict.fromkeys(loader.tasks.tolist()):
        i = int(np.flatnonzero(loader.tasks == task)[0])
        item, row = loader[i], loader.rows.iloc[i]
        assert item["target"].shape == (2, 3, row["target_height"], row["target_width"]), task
        assert item["source"].shape == (2, 3, row["source_height"], row["source_width"]), task
        json.dumps(item["meta"], allow_nan=False)  # plain values: missing ones are None
