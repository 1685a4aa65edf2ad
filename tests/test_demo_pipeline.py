"""The embedded default end to end, and the properties each operator's pairs claim."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
from pathlib import Path

import cv2
import datasets
import numpy as np
import pandas as pd
import pytest

from conftest import OPERATOR_TASKS, snakemake
from senorita.atomic import read_provenance
from senorita.masks import load_masks
from senorita.operators.canny import canny_edges
from senorita.operators.cut import region_mask
from senorita.tasks import task_ids
from senorita.video import probe, read_frames


def manifest(run, task) -> pd.DataFrame:
    return pd.read_parquet(run / "dataset" / task / "manifest.parquet")


def pair_frames(run, row) -> tuple[np.ndarray, np.ndarray]:
    root = run / "dataset"
    return read_frames(root / row["source_path"]), read_frames(root / row["target_path"])


def test_every_operator_task_has_pairs_in_the_release_layout(demo_run):
    catalogue = pd.read_parquet(demo_run / "results/sources/catalogue.parquet")
    for task in OPERATOR_TASKS:
        df = manifest(demo_run, task)
        assert len(df) == len(catalogue), task  # one clip per demo video, every clip paired
        assert df["pair_id"].is_unique
        for row in df.to_dict("records"):
            src, tgt = (
                demo_run / "dataset" / row["source_path"],
                demo_run / "dataset" / row["target_path"],
            )
            assert src.name == f"{row['pair_id']}_org.mp4" and tgt.name == f"{row['pair_id']}.mp4"
            assert src.parent == tgt.parent == demo_run / "dataset" / task / f"{row['shard']:05d}"
            s, t = probe(src), probe(tgt)
            assert s.frames == t.frames == row["frames"] == 33
            assert (t.height, t.width) == (row["target_height"], row["target_width"]) == (336, 592)
            assert (s.height, s.width) == (row["source_height"], row["source_width"])
            assert row["instruction"] and row["template_id"].startswith(task + "/")
            assert row["licence"] and row["origin"] == "demo" and row["code_version"]
            json.loads(row["params"])
        prov = read_provenance(demo_run / "dataset" / task / "manifest.parquet")
        assert prov["stage"] == "manifest" and prov["code_version"] == df["code_version"].iloc[0]
        made_by = prov["made_by"]
        assert made_by["stage"] == "pairs" and made_by["params"]["task"] == task
        assert made_by["params"]["params"]["clip_fraction"] == 1.0
        assert made_by["packages"]["numpy"] == np.__version__


def test_manifests_load_with_datasets(demo_run):
    files = {t: str(demo_run / "dataset" / t / "manifest.parquet") for t in OPERATOR_TASKS}
    ds = datasets.load_dataset("parquet", data_files=files)
    for task in OPERATOR_TASKS:
        assert ds[task].num_rows == len(manifest(demo_run, task))
        assert set(ds[task]["task"]) == {task}


def test_dataset_card_counts_every_task(demo_run):
    card = (demo_run / "dataset" / "README.md").read_text()
    for task in task_ids():  # the task's own row: its number, id, direction, then its count
        n = len(manifest(demo_run, task))
        assert re.search(rf"^\| \d+ \| {task} \| [^|]+ \| {n} \|", card, re.M), task


def test_upscale_source_is_smaller_by_the_factor(demo_run):
    for row in manifest(demo_run, "upscale").to_dict("records"):
        factor = json.loads(row["params"])["factor"]
        assert abs(row["source_height"] * factor - row["target_height"]) <= 2 * factor
        assert abs(row["source_width"] * factor - row["target_width"]) <= 2 * factor
        src, tgt = pair_frames(demo_run, row)
        down = cv2.resize(tgt[10], (src.shape[2], src.shape[1]), interpolation=cv2.INTER_AREA)
        assert np.abs(down.astype(int) - src[10]).mean() < 6


def test_colorization_source_is_gray(demo_run):
    for row in manifest(demo_run, "colorization").to_dict("records"):
        src, tgt = pair_frames(demo_run, row)
        src = src.astype(int)
        assert np.abs(src[..., 0] - src[..., 1]).max() <= 2
        assert np.abs(src[..., 1] - src[..., 2]).max() <= 2
        tgt = tgt.astype(int)
        assert np.abs(tgt[..., 0] - tgt[..., 1]).mean() > 5  # the target has colour


def test_canny_source_is_binary_and_on_the_targets_edges(demo_run):
    for row in manifest(demo_run, "canny_to_video").to_dict("records"):
        params = json.loads(row["params"])
        src, tgt = pair_frames(demo_run, row)
        luma = src[..., 0].astype(int)
        assert np.mean((luma < 48) | (luma > 207)) > 0.97  # binary up to H.264 noise
        edges = luma > 127
        expected = np.stack([canny_edges(f, params["low"], params["high"]) > 0 for f in tgt])
        assert expected.any()
        near = lambda m: np.stack([cv2.dilate(f.astype(np.uint8), np.ones((3, 3))) > 0 for f in m])  # noqa: E731
        precision = (edges & near(expected)).sum() / max(1, edges.sum())
        recall = (expected & near(edges)).sum() / expected.sum()
        assert precision > 0.9 and recall > 0.9, (precision, recall)


def _sharpness(frames: np.ndarray) -> float:
    return float(
        np.mean(
            [cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in frames]
        )
    )


def test_deblur_source_is_blurrier(demo_run):
    kinds = set()
    for row in manifest(demo_run, "deblur").to_dict("records"):
        kinds.add(json.loads(row["params"])["kind"])
        src, tgt = pair_frames(demo_run, row)
        assert _sharpness(src) < 0.5 * _sharpness(tgt)
    assert kinds <= {"gaussian", "motion"}


@pytest.mark.parametrize("task", ["outpainting", "inpainting"])
def test_cut_area_equals_the_parameters(demo_run, task):
    shapes = set()
    for row in manifest(demo_run, task).to_dict("records"):
        params = json.loads(row["params"])
        shapes.add(params["shape"])
        src, tgt = pair_frames(demo_run, row)
        mask = region_mask(params, src.shape[1], src.shape[2])
        # Compare away from the region's edge, where 4:2:0 chroma and DCT blocks mix both sides.
        inner = cv2.erode(mask.astype(np.uint8), np.ones((9, 9))) > 0
        outer = cv2.erode((~mask).astype(np.uint8), np.ones((9, 9))) > 0
        assert inner.any() and outer.any()
        assert src[:, inner].mean() < 6  # blanked to the fill value (0)
        diff = np.abs(src[:, outer].astype(int) - tgt[:, outer].astype(int))
        assert diff.mean() < 3  # untouched elsewhere
        if task == "inpainting":
            assert abs(mask.mean() - params["hole_fraction"]) < 1e-3
    assert shapes  # at least one shape drawn


def test_no_clip_spans_a_shot_cut(demo_run):
    catalogue = pd.read_parquet(demo_run / "results/sources/catalogue.parquet")
    clips = pd.concat(
        pd.read_parquet(p)
        for p in sorted((demo_run / "results/clips").glob("*.parquet"))
        if not p.name.endswith("rejects.parquet")
    )
    cut_videos = catalogue[catalogue["demo_cut_frame"].notna()]
    assert len(cut_videos) >= 1
    for video in cut_videos.to_dict("records"):
        cut = int(video["demo_cut_frame"])
        video_clips = clips[clips["video_id"] == video["video_id"]].to_dict("records")
        assert video_clips, "the video with a cut gave no clip: nothing was checked"
        for clip in video_clips:
            assert clip["end_frame"] <= cut or clip["start_frame"] >= cut, (clip, cut)


def test_second_run_has_nothing_to_do(demo_run):
    proc = snakemake(demo_run, "-n", "all")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _job_records(run: Path) -> dict[str, tuple[str, float]]:
    """Snakemake's record of every output it made in ``run``: path -> (rule, end time)."""
    records = {}
    for path in (run / ".snakemake" / "metadata").iterdir():
        meta = json.loads(path.read_text())
        output = base64.urlsafe_b64decode(path.name).decode()
        records[output] = (meta["rule"], meta.get("endtime") or 0)
    return records


def test_rebuilding_one_task_reruns_only_its_jobs(demo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run, run, symlinks=True)
    before = {p: p.stat().st_mtime_ns for p in (run / "dataset").rglob("*.mp4")}
    started = time.time()
    proc = snakemake(run, "--cores", "2", "task_deblur", "--forcerun", "operator_pairs")
    assert proc.returncode == 0
    changed = {p for p, t in before.items() if p.stat().st_mtime_ns != t}
    assert changed and all(p.relative_to(run / "dataset").parts[0] == "deblur" for p in changed)
    # Every deblur source was remade (targets are hard links to the unchanged clips).
    assert {p for p in before if "deblur" in p.parts and p.name.endswith("_org.mp4")} <= changed
    # Which jobs ran, from Snakemake's own records (.snakemake/metadata: one per output, with the
    # rule and its end time): only deblur's. (The log holds no shell commands without -p, and
    # rules with a message print no wildcards, so grepping the log proves nothing.)
    remade = {out: rule for out, (rule, end) in _job_records(run).items() if end >= started}
    assert remade, "no job ran"
    assert all("/deblur/" in out or out.endswith("/deblur") for out in remade), remade
    assert {"operator_pairs", "filter_scores", "manifest"} <= set(remade.values())
    # The rebuilt deblur pairs are the same pairs: seeded parameters and deterministic encoding.
    assert (
        manifest(run, "deblur")
        .drop(columns="code_version")
        .equals(manifest(demo_run, "deblur").drop(columns="code_version"))
    )


DETECTOR_TASKS = task_ids("control")


def control_maps(run) -> pd.DataFrame:
    return pd.concat(
        pd.read_parquet(p)
        for p in sorted((run / "results/control").glob("*.parquet"))
        if not p.name.endswith("rejects.parquet")
    )


def test_every_detector_task_pairs_each_clip_with_its_map(demo_run):
    catalogue = pd.read_parquet(demo_run / "results/sources/catalogue.parquet")
    maps = control_maps(demo_run)
    assert set(maps["kind"]) == {"depth", "hed", "scribble", "canny"}  # canny: local stylization
    for task in DETECTOR_TASKS:
        kind = task.split("_")[0]
        df = manifest(demo_run, task)
        assert len(df) == len(catalogue), task
        for row in df.to_dict("records"):
            src = demo_run / "dataset" / row["source_path"]
            tgt = demo_run / "dataset" / row["target_path"]
            assert src.name == f"{row['pair_id']}_org.mp4" and tgt.name == f"{row['pair_id']}.mp4"
            assert src.parent == tgt.parent == demo_run / "dataset" / task / f"{row['shard']:05d}"
            s, t = probe(src), probe(tgt)
            assert s.frames == t.frames == row["frames"] == 33
            assert (s.height, s.width) == (t.height, t.width) == (336, 592)
            cmap = maps[(maps["clip_id"] == row["clip_id"]) & (maps["kind"] == kind)].iloc[0]
            map_side = tgt if task.endswith("_detection") else src
            assert os.path.samefile(map_side, demo_run / cmap["path"])
            model = "results/models/tiny/" + ("depth" if kind == "depth" else "hed")
            assert row["maker"] == f"model:{kind}:{model}@local"
            assert json.loads(row["params"])["model"] == model
            assert row["instruction"] and row["template_id"].startswith(task + "/")


def test_control_maps_have_the_claimed_values(demo_run):
    maps = control_maps(demo_run)
    for row in maps.to_dict("records"):
        video = read_frames(demo_run / row["path"]).astype(int)
        assert video.shape == (33, 336, 592, 3)
        assert np.abs(video[..., 0] - video[..., 2]).max() <= 3  # gray
        luma = video[..., 0].reshape(33, -1)
        if row["kind"] == "scribble":
            assert np.mean((luma < 48) | (luma > 207)) > 0.95  # binary up to H.264 noise
        if row["kind"] == "depth":
            # Normalised once per clip: the clip spans 0..255, but most frames do not (per-frame
            # normalisation would stretch every frame to 0..255 and flicker).
            assert luma.min() <= 5 and luma.max() >= 250
            assert (luma.max(axis=1) >= 250).sum() < 33 / 2


def test_every_clip_has_a_caption_within_clips_token_limit(demo_run):
    catalogue = pd.read_parquet(demo_run / "results/sources/catalogue.parquet")
    captions = pd.concat(
        pd.read_parquet(p)
        for p in sorted((demo_run / "results/captions").glob("*.parquet"))
        if not p.name.endswith("rejects.parquet")
    )
    assert len(captions) == len(catalogue) and captions["clip_id"].is_unique
    assert (captions["caption"].str.len() > 0).all()
    assert (captions["clip_tokens"] <= 77).all()
    assert (captions["model"] == "results/models/tiny/captioner").all()


def test_grounding_pairs_come_from_the_masks_stage(demo_run):
    catalogue = pd.read_parquet(demo_run / "results/sources/catalogue.parquet")
    objects = pd.concat(
        pd.read_parquet(p)
        for p in sorted((demo_run / "results/masks").glob("*.parquet"))
        if not p.name.endswith("rejects.parquet")
    )
    df = manifest(demo_run, "grounding")
    # Every clip found an object (the demo's vocabulary and open area limits), so every clip
    # has a grounding pair; its target is one of the clip's object masks.
    assert len(df) == len(catalogue) == objects["clip_id"].nunique()
    for row in df.to_dict("records"):
        params = json.loads(row["params"])
        obj = objects[
            (objects["clip_id"] == row["clip_id"]) & (objects["object"] == params["object"])
        ]
        # The tiny VLM names noise words; the demo's vocabulary adds "shape" to every clip's.
        assert len(obj) == 1 and obj.iloc[0]["phrase"] == params["phrase"]
        assert params["phrase"] in obj.iloc[0]["phrases"] and "shape" in obj.iloc[0]["phrases"]
        assert params["phrase"] in row["instruction"]
        src = demo_run / "dataset" / row["source_path"]
        tgt = demo_run / "dataset" / row["target_path"]
        s, t = probe(src), probe(tgt)
        assert s.frames == t.frames == row["frames"] == 33
        assert (s.height, s.width) == (t.height, t.width) == (336, 592)
        mask = load_masks(demo_run / params["mask_path"])[params["object"]]
        target = read_frames(tgt)[..., 0].astype(int)
        assert np.abs(target - mask * 255).mean() < 8  # the mask, white on black
    # Every built task has its manifest.
    assert all((demo_run / "dataset" / t / "manifest.parquet").exists() for t in task_ids())


def test_expert_tasks_are_made_by_the_experts_trained_in_the_run(demo_run):
    """The demo's experts are trained in the run from tiny random bases (noise), 9 x 64 x 112."""
    catalogue = pd.read_parquet(demo_run / "results/sources/catalogue.parquet")
    experts = [
        ("object_removal", "remover"),
        ("local_stylization", "local_stylizer"),
        ("object_swap", "inpainter"),
        ("global_stylization", "global_stylizer"),
    ]
    for task, expert in experts:
        df = manifest(demo_run, task)
        assert len(df) == len(catalogue), task  # every demo clip has an object
        for row in df.to_dict("records"):
            params = json.loads(row["params"])
            assert params["checkpoint"] == f"results/training/{expert}/final"
            assert row["maker"] == f"expert:{expert}:results/training/{expert}/final@local"
            assert {"prompt", "negative_prompt", "guidance", "steps", "seed"} <= set(params)
            for side in ("source_path", "target_path"):
                info = probe(demo_run / "dataset" / row[side])
                assert (
                    (info.frames, info.height, info.width)
                    == (9, 64, 112)
                    == (
                        row["frames"],
                        row["target_height"],
                        row["target_width"],
                    )
                )
        params = df["params"].map(json.loads)
        if task == "local_stylization":
            assert params.map(lambda p: p["attribute"]).str.len().gt(0).all()
        if task == "object_swap":
            assert all(p["new_object"] != p["phrase"] for p in params)
            assert all(p["frame_filler"] == "results/models/tiny/frame_filler" for p in params)
        if task == "global_stylization":
            assert all(
                p["style"] in row["instruction"]
                for p, row in zip(params, df.to_dict("records"), strict=True)
            )
    removal = manifest(demo_run, "object_removal").set_index("clip_id")
    addition = manifest(demo_run, "object_addition")
    assert len(addition) == len(removal)
    for row in addition.to_dict("records"):
        fwd = removal.loc[row["clip_id"]]
        root = demo_run / "dataset"
        assert os.path.samefile(root / row["source_path"], root / fwd["target_path"])
        assert os.path.samefile(root / row["target_path"], root / fwd["source_path"])
    checks = sorted(p.name for p in (demo_run / "results/experts").glob("*.checkpoint.json"))
    assert checks == [f"{e}.checkpoint.json" for e in sorted(e for _, e in experts)]
