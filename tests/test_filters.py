"""The three filters (stage 8): CLIP loader, scores, thresholds, and the scoring/threshold split
(``senorita.filters.scoring`` in the filter_scores job, ``.thresholds`` in the manifest job)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from snakemake.utils import validate

from conftest import REPO, planned, snakemake
from senorita.filters import SCORES
from senorita.filters.scoring import (
    SCORE_COLUMNS,
    PairScorer,
    quality_scores,
    sample_indices,
    score_task,
)
from senorita.filters.thresholds import apply_filters, failure, parse_bounds
from senorita.journal import Journal
from senorita.manifest import build_manifest
from senorita.models import ModelSpec
from senorita.models.clip import ClipEmbedder
from senorita.summary import pass_rates
from senorita.tasks import TASKS, task_ids
from senorita.testing.tiny import build_tiny_models
from senorita.video import write_frames

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCORING = {"frames": 4, "frozen_diff": 0.5}


def defaults() -> dict:
    config: dict = {}
    validate(config, str(SCHEMA))  # the schema's defaults, as the Snakefile fills them
    return config


def moving_clip(t=9, h=64, w=96, seed=0) -> np.ndarray:
    """A sharp textured picture panning across the frame, like a real clip."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8), (w + 8 * t, h))
    stripes = ((np.arange(w + 8 * t) // 3) % 2 * 60).astype(np.uint8)[None, :, None]
    canvas = np.clip(base.astype(int) + stripes, 0, 255).astype(np.uint8)
    return np.stack([canvas[:, 8 * k : 8 * k + w] for k in range(t)])


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_models(tmp_path_factory.mktemp("tiny"), families=("clip",))["clip"]


def clip_models(path: Path) -> dict:
    return {
        "clip": {
            "id": str(path),
            "revision": None,
            "dtype": "auto",
            "device": "auto",
            "batch_size": 4,
        }
    }


def test_clip_round_trips_and_gives_normalised_embeddings(tiny_clip, tmp_path):
    spec = ModelSpec(family="clip", id=str(tiny_clip), batch_size=3)
    clip = ClipEmbedder.load(spec)
    frames = moving_clip(t=5)
    images = clip.images(frames)
    texts = clip.texts(["a red car", "a dog " * 100])  # the second is cut at 77 tokens
    assert images.shape == (5, 16) and texts.shape == (2, 16) and images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    # Batching does not change the result; differently sized frames are fine.
    one = ClipEmbedder(clip.model, clip.processor, ModelSpec(family="clip", id="x", batch_size=1))
    np.testing.assert_allclose(one.images(frames), images, atol=1e-5)
    assert clip.images([frames[0], frames[0][::2, ::2]]).shape == (2, 16)
    # save_pretrained -> from_pretrained gives the same model.
    clip.model.save_pretrained(tmp_path / "again")
    clip.processor.save_pretrained(tmp_path / "again")
    again = ClipEmbedder.load(ModelSpec(family="clip", id=str(tmp_path / "again")))
    np.testing.assert_allclose(again.images(frames), images, atol=1e-5)
    np.testing.assert_allclose(again.texts(["a red car"]), texts[:1], atol=1e-5)
    # The hub checkpoints' layout: tokenizer files and a legacy preprocessor_config.json.
    legacy = tmp_path / "legacy"
    px = clip.processor.image_processor.crop_size["height"]  # the tiny model's input size
    clip.model.save_pretrained(legacy)
    clip.processor.tokenizer.save_pretrained(legacy)
    (legacy / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "crop_size": px,
                "do_center_crop": True,
                "do_normalize": True,
                "do_resize": True,
                "feature_extractor_type": "CLIPFeatureExtractor",
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "resample": 3,
                "size": px,
            }
        )
    )
    hub_like = ClipEmbedder.load(ModelSpec(family="clip", id=str(legacy)))
    np.testing.assert_allclose(hub_like.images(frames), images, atol=1e-5)


def test_quality_scores_catch_blur_darkness_freezing_and_flicker():
    clip = moving_clip()
    good = quality_scores(clip, 0.5)
    assert good["sharpness"] > 50 and 40 < good["mean_luma"] < 220
    assert good["clipped_fraction"] < 0.05 and good["frozen_fraction"] == 0 and good["flicker"] < 1
    blurred = quality_scores(np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in clip]), 0.5)
    assert blurred["sharpness"] < good["sharpness"] / 10
    black = quality_scores(np.zeros_like(clip), 0.5)
    assert black == {
        "sharpness": 0.0,
        "mean_luma": 0.0,
        "clipped_fraction": 1.0,
        "frozen_fraction": 1.0,
        "flicker": 0.0,
    }
    still = quality_scores(np.repeat(clip[:1], 9, axis=0), 0.5)
    assert still["frozen_fraction"] == 1.0
    offsets = np.array([15 if k % 2 else -15 for k in range(len(clip))])[:, None, None, None]
    flicker = np.clip(clip.astype(int) + offsets, 0, 255).astype(np.uint8)
    assert quality_scores(flicker, 0.5)["flicker"] > 20
    # A steady fade is not flicker.
    fade = (clip * np.linspace(1, 0.5, len(clip))[:, None, None, None]).astype(np.uint8)
    assert quality_scores(fade, 0.5)["flicker"] < 1
    assert list(sample_indices(33, 8)) == [0, 5, 9, 14, 18, 23, 27, 32]
    assert list(sample_indices(3, 8)) == [0, 1, 2]


def test_thresholds_judge_filters_in_the_papers_order():
    thresholds = defaults()["filters"]["tasks"]["object_removal"]
    bounds = parse_bounds(thresholds)
    fine = {
        "sharpness": 100.0,
        "mean_luma": 120.0,
        "clipped_fraction": 0.0,
        "frozen_fraction": 0.0,
        "flicker": 0.1,
        "clip_text": 0.3,
        "clip_directional": 0.25,
        "clip_image": 0.7,
    }
    assert failure(fine, bounds) is None
    # Quality comes first even when similarity fails too; every failing check is named.
    bad = {**fine, "mean_luma": 5.0, "clipped_fraction": 0.9, "clip_image": 0.99}
    assert failure(bad, bounds) == "quality: mean_luma 5 < 20; clipped_fraction 0.9 > 0.5"
    assert failure({**fine, "clip_image": 0.95}, bounds) == "similarity: clip_image 0.95 > 0.8"
    assert failure({**fine, "clip_image": 0.3}, bounds) == "similarity: clip_image 0.3 < 0.5"
    assert failure({**fine, "clip_text": 0.1, "clip_image": 0.99}, bounds).startswith("text: ")
    # A null score (no prompts) is not filtered on; a null bound is not applied.
    assert failure({**fine, "clip_text": None, "clip_directional": float("nan")}, bounds) is None
    free = parse_bounds({**thresholds, "max_clip_image": None})
    assert failure({**fine, "clip_image": 0.99}, free) is None
    with pytest.raises(ValueError, match="min_/max_"):
        apply_filters(pd.DataFrame({"pair_id": []}), pd.DataFrame(), {"min_beauty": 1})


def test_every_task_has_gates_and_map_tasks_skip_what_cannot_be_judged():
    gates = defaults()["filters"]["tasks"]
    assert set(gates) == set(defaults()["tasks"])  # all 18 tasks
    known = {f"{side}_{score}" for score in SCORES for side in ("min", "max")}
    for task, bounds in gates.items():
        assert len(bounds) == 13 and set(bounds) <= known, task
        # Every task is judged, map tasks on the map (the judge's own rubric).
        assert [bounds[f"min_judge_{k}"] for k in ("instruction", "preservation", "quality")] == [
            3,
            3,
            3,
        ], task
    expert = gates["object_swap"]
    assert (expert["min_clip_text"], expert["min_clip_directional"]) == (0.2, 0.2)
    assert (expert["min_clip_image"], expert["max_clip_image"]) == (0.5, 0.8)
    for task in (t.id for t in TASKS if t.filter_kind == "map_to_video"):
        assert gates[task]["min_clip_image"] is gates[task]["max_clip_image"] is None, task
        assert gates[task]["min_sharpness"] is not None, task  # the target is the clip
    for task in (t.id for t in TASKS if t.filter_kind in ("detection", "grounding")):
        assert gates[task]["min_sharpness"] is None and gates[task]["min_clip_text"] is None
        assert gates[task]["min_clip_image"] is gates[task]["max_clip_image"] is None, task
    for task in ("deblur", "upscale", "colorization", "inpainting", "outpainting"):
        assert gates[task]["max_clip_image"] is None, task  # a degraded copy is meant to be close


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, tiny_clip):
    """A manifest-like task in two shards: pairs built to fail, and good ones."""
    root = tmp_path_factory.mktemp("filters")
    dataset = root / "dataset"
    clip, other = moving_clip(seed=1), moving_clip(seed=2)
    videos = {
        "clip": clip,
        "other": other,
        "black": np.zeros_like(clip),
        "blurred": np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in clip]),
    }
    for name, frames in videos.items():
        write_frames(dataset / "media" / f"{name}.mp4", frames, 8.0, crf=18, preset="ultrafast")
    rows = [
        # (pair_id, shard, source, target, source_prompt, target_prompt)
        ("identical", 0, "clip", "clip", None, None),
        ("black_target", 0, "other", "black", None, None),
        ("good", 1, "blurred", "clip", None, None),
        ("prompted_identical", 1, "clip", "clip", "a striped wall", "a striped wall with a cat"),
        ("missing", 1, "clip", "nowhere", None, None),
    ]
    tables = []
    for shard in (0, 1):
        table = pd.DataFrame(
            [
                {
                    "pair_id": pid,
                    "task": "object_removal",
                    "shard": s,
                    "source_path": f"media/{src}.mp4",
                    "target_path": f"media/{tgt}.mp4",
                    "source_prompt": sp,
                    "target_prompt": tp,
                }
                for pid, s, src, tgt, sp, tp in rows
                if s == shard
            ]
        )
        path = root / "pairs" / f"{shard:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_parquet(path, index=False)
        tables.append(path)
    pattern = str(root / "pairs" / "{shard}.parquet")
    scores_path = root / "scores.parquet"
    scores = score_task(
        "object_removal", pattern, 2, dataset, SCORING, clip_models(tiny_clip), scores_path
    )
    return {
        "root": root,
        "dataset": dataset,
        "tables": tables,
        "pattern": pattern,
        "scores": scores,
        "scores_path": scores_path,
    }


def test_every_pair_gets_every_applicable_score(synthetic):
    scores = synthetic["scores"].set_index("pair_id")
    assert list(synthetic["scores"].columns) == SCORE_COLUMNS
    readable = scores.drop(index="missing")
    quality = ["sharpness", "mean_luma", "clipped_fraction", "frozen_fraction", "flicker"]
    assert readable[[*quality, "clip_image"]].notna().all().all()
    assert (readable["scored_frames"] == 4).all()
    assert readable["score_model"].str.contains("clip").all()
    # Text scores exist exactly where the pair has prompts.
    assert readable["clip_text"].notna().tolist() == [False, False, False, True]
    assert readable["clip_directional"].notna().tolist() == [False, False, False, True]
    assert scores.loc["prompted_identical", "clip_directional"] == 0  # no change at all
    assert scores.loc["identical", "clip_image"] == pytest.approx(1.0, abs=1e-5)
    assert scores.loc["missing", "score_error"].startswith("unreadable")
    assert not Path(str(synthetic["scores_path"]) + ".journal.jsonl").exists()


def test_pairs_built_to_fail_are_kept_with_the_reason(synthetic, tmp_path):
    thresholds = defaults()["filters"]["tasks"]["object_removal"]
    out = tmp_path / "manifest.parquet"
    build_manifest(synthetic["tables"], out, synthetic["scores_path"], thresholds)
    manifest = pd.read_parquet(out).set_index("pair_id")
    assert len(manifest) == 5  # failing pairs keep their rows
    reason = manifest["filter_reason"]
    assert reason["identical"].startswith("similarity: clip_image 1 > 0.8")
    assert reason["black_target"].startswith("quality: sharpness 0 < 10; mean_luma 0 < 20")
    assert reason["prompted_identical"].startswith("text: ")  # text comes before similarity
    assert "clip_directional 0 < 0.2" in reason["prompted_identical"]
    assert reason["missing"].startswith("unscored: ")
    assert not manifest.loc[["identical", "black_target", "prompted_identical", "missing"]][
        "kept"
    ].any()
    assert json.loads(manifest["filter_thresholds"].iloc[0]) == {**thresholds, "gate_judge": True}
    assert set(SCORES) <= set(manifest.columns)
    # Without the judge's verdicts its columns are null and its bounds not applied.
    assert manifest["judge_instruction"].isna().all() and manifest["judge_pass"].isna().all()
    # The good pair passes quality and text; with the similarity bounds off it is kept.
    loose = {**thresholds, "min_clip_image": None, "max_clip_image": None}
    build_manifest(synthetic["tables"], out, synthetic["scores_path"], loose)
    manifest = pd.read_parquet(out).set_index("pair_id")
    assert manifest.loc["good", "kept"] and pd.isna(manifest.loc["good", "filter_reason"])
    # Pass rates follow the order: of the 4 readable pairs 3 pass quality (not the black one),
    # and of those 3, 2 pass text (not the prompted identical one).
    (tmp_path / "object_removal").mkdir()
    build_manifest(
        synthetic["tables"],
        tmp_path / "object_removal" / "manifest.parquet",
        synthetic["scores_path"],
        thresholds,
    )
    rates = pass_rates([tmp_path / "object_removal" / "manifest.parquet"]).iloc[0].to_dict()
    verdicts = pd.read_parquet(tmp_path / "object_removal" / "manifest.parquet")
    assert rates["task"] == "object_removal" and rates["pairs"] == 5 and rates["unscored"] == 1
    assert rates["quality"] == pytest.approx(3 / 4) and rates["text"] == pytest.approx(2 / 3)
    assert rates["kept"] == int(verdicts["kept"].sum())


def test_scoring_resumes_per_shard_and_rescoring_a_changed_shard(synthetic, tiny_clip, tmp_path):
    out = tmp_path / "scores.parquet"
    first = synthetic["scores"]
    shard0 = first[first["pair_id"].isin(["identical", "black_target"])]
    digest = hashlib.sha256(synthetic["tables"][0].read_bytes()).hexdigest()
    settings = {**SCORING, "model": first["score_model"].iloc[0]}
    # A job killed after shard 0: its journal holds shard 0's rows (marked to tell them apart).
    journal = Journal(out)
    marked = [{**r, "sharpness": -1.0} for r in shard0.to_dict("records")]
    journal.record("00000", {"digest": digest, "settings": settings, "rows": marked})
    journal._fh.close()
    again = score_task(
        "object_removal", synthetic["pattern"], 2, synthetic["dataset"], SCORING,
        clip_models(tiny_clip), out,
    )  # fmt: skip
    reused = again.set_index("pair_id")["sharpness"]
    assert (reused[["identical", "black_target"]] == -1.0).all()  # shard 0 was not rescored
    assert (reused[["good", "prompted_identical"]] > 0).all()
    # A journal entry for a pair table that has changed since is not reused.
    journal = Journal(out)
    journal.record("00000", {"digest": "stale", "settings": settings, "rows": marked})
    journal._fh.close()
    fresh = score_task(
        "object_removal", synthetic["pattern"], 2, synthetic["dataset"], SCORING,
        clip_models(tiny_clip), out,
    )  # fmt: skip
    assert (fresh["sharpness"].dropna() >= 0).all()


def test_scorer_samples_the_same_times_from_videos_of_different_lengths(tiny_clip):
    spec = ModelSpec(family="clip", id=str(tiny_clip))
    scorer = PairScorer(ClipEmbedder.load(spec), frames=3, frozen_diff=0.5)
    clip = moving_clip(t=9)
    scores = scorer(clip[::2], clip)  # 5 source frames, 9 target frames: both give 0, 4 and 8
    assert scores["scored_frames"] == 3 and scores["clip_image"] == pytest.approx(1.0, abs=1e-5)


# --- through Snakemake, on the embedded default ------------------------------------------------


def test_every_demo_pair_has_its_scores_and_a_verdict(demo_run):
    config = defaults()
    card = (demo_run / "dataset" / "README.md").read_text()
    assert "## Filters" in card
    tasks = sorted(p.parent.name for p in (demo_run / "dataset").glob("*/manifest.parquet"))
    assert tasks == sorted(task_ids())  # every built task
    for task in tasks:
        m = pd.read_parquet(demo_run / "dataset" / task / "manifest.parquet")
        assert len(m) and m["pair_id"].is_unique
        quality = ["sharpness", "mean_luma", "clipped_fraction", "frozen_fraction", "flicker"]
        assert m[[*quality, "clip_image"]].notna().all().all(), task
        # No task makes prompts yet: text alignment is null and never filters.
        assert m["clip_text"].isna().all() and m["clip_directional"].isna().all()
        assert m["source_prompt"].isna().all() and m["target_prompt"].isna().all()
        assert (m["kept"] == m["filter_reason"].isna()).all()
        assert not m["filter_reason"].dropna().str.startswith(("text", "unscored")).any()
        # The tiny judge's answers are noise: every pair asked (twice), none scored, and as the
        # demo's judge does not gate, none left out for it.
        assert m["judge_error"].str.startswith("unreadable answer").all(), task
        assert m["judge_instruction"].isna().all() and m["judge_pass"].isna().all()
        assert not m["filter_reason"].dropna().str.startswith("judge").any()
        bounds = {**config["filters"]["tasks"][task], "gate_judge": False}
        assert json.loads(m["filter_thresholds"].iloc[0]) == bounds
        assert f"| {task} | {int(m['kept'].sum())} / {len(m)} |" in card
        assert (demo_run / "results" / "report" / task / "judge_lowest.png").stat().st_size
    judge = (demo_run / "results" / "report" / "judge.html").read_text()
    assert "The judge and the CLIP filters" in judge and "all tasks" in judge
    assert "(recorded, not gating)" in card


def test_changing_a_threshold_reruns_only_the_thresholding(demo_run, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(demo_run, work, symlinks=True)
    assert "Nothing to be done" in snakemake(work, "-n", "all").stdout
    changed = {"filters": {"tasks": {"deblur": {"min_sharpness": 1e9}}}}
    plan = snakemake(work, "-n", "all", config=changed).stdout
    jobs = planned(plan)
    assert jobs["manifest"] == 1 and "filter_scores" not in jobs and "operator_pairs" not in jobs
    assert "Writing the deblur manifest" in plan
    scores = work / "results" / "filters" / "deblur" / "scores.parquet"
    before = scores.stat().st_mtime_ns
    snakemake(work, "--cores", "2", "all", config=changed)
    assert scores.stat().st_mtime_ns == before
    m = pd.read_parquet(work / "dataset" / "deblur" / "manifest.parquet")
    assert not m["kept"].any()
    assert m["filter_reason"].str.startswith("quality: sharpness").all()
    # Changing what is scored (frames per video) does rescore.
    rescore = {**changed, "filters": {**changed["filters"], "frames": 3}}
    assert planned(snakemake(work, "-n", "all", config=rescore).stdout)["filter_scores"] == len(
        task_ids()
    )
