"""Control maps (stage 5) and the six detector tasks made from them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from senorita import control as control_mod
from senorita.atomic import read_provenance
from senorita.clips import CLIP_COLUMNS
from senorita.control import control_shard
from senorita.pairs import PairJob, make_task_pairs
from senorita.scribble import fake_scribble, ridge_nms, thin
from senorita.tasks import get, task_ids
from senorita.testing.tiny import build_tiny_models
from senorita.video import probe, read_frames, write_frames

CONTROL_CFG = {
    "depth": {"percentiles": [0.0, 100.0]},
    "hed": {"resolution": 64},
    "scribble": {"threshold": 127, "nms_sigma": 3.0, "stroke_sigma": 3.0},
    "canny": {"low": 100, "high": 200},
    "resources": {"mem_mb": 1000, "runtime": 10},
}
ENCODE = {"crf": 18, "preset": "ultrafast"}


def soft_band(h=96, w=128, width=15, sigma=4.0) -> np.ndarray:
    """A soft, thick, slanted edge band, like HED's response to a boundary."""
    img = np.zeros((h, w), np.uint8)
    cv2.line(img, (10, h // 2), (w - 10, h // 2 + 12), 255, width)
    return cv2.GaussianBlur(img, (0, 0), sigma)


def test_nms_and_thinning_leave_one_pixel_curves():
    soft = soft_band()
    ridge = ridge_nms(soft, 127, 3.0)
    assert set(np.unique(ridge)) <= {0, 255} and ridge.any()
    thin_curve = thin(ridge)
    cols = (thin_curve > 0).sum(axis=0)[20:108]
    assert cols.max() == 1 and (cols == 1).mean() > 0.95  # one pixel per column, unbroken
    # Thinning a filled shape leaves a skeleton, a small fraction of it.
    blob = np.zeros((60, 60), np.uint8)
    blob[10:50, 15:45] = 255
    skeleton = thin(blob)
    assert 0 < (skeleton > 0).sum() < 0.1 * (blob > 0).sum()


def test_fake_scribble_is_binary_and_thin():
    soft = soft_band()
    curve = fake_scribble(soft, stroke_sigma=0)
    assert set(np.unique(curve)) == {0, 255}
    assert (curve > 0).sum(axis=0)[20:108].max() == 1  # one pixel wide (ends may curl)
    stroke = fake_scribble(soft)  # ControlNet's strokes: sigma 3, about 12 px
    assert set(np.unique(stroke)) == {0, 255}
    widths = (stroke > 0).sum(axis=0)[30:98]
    assert widths.min() >= 6 and widths.max() <= 15  # narrower than the 15-px soft band's spread
    assert (stroke > 0).sum() < (soft > 127).sum() * 1.5
    # Below the threshold nothing is drawn.
    assert not fake_scribble((soft // 3).astype(np.uint8)).any()


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """Two small clips, a clip table and a video table, as the clips stage leaves them."""
    root = tmp_path_factory.mktemp("control")
    models = build_tiny_models(root / "tiny", ("depth", "hed"))
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2):
        t, h, w = 9, 48, 80
        base = cv2.resize(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8), (w, h))
        clip = np.stack([np.roll(base, 3 * k, axis=1) for k in range(t)])
        path = root / "clips" / f"clip{i}.mp4"
        write_frames(path, clip, 8.0, crf=18, preset="ultrafast")
        rows.append(
            {
                "clip_id": f"clip{i}",
                "video_id": f"video{i}",
                "shard": 0,
                "start_frame": 0,
                "end_frame": 2 * t - 1,
                "start_s": 0.0,
                "frames": t,
                "stride": 2,
                "fps": 8.0,
                "height": h,
                "width": w,
                "path": str(path),
                "sha256": "",
                "origin": "test",
                "licence": "CC0-1.0",
                "author": "a",
                "source_name": "x.mp4",
            }
        )
    clips = root / "clips.parquet"
    pd.DataFrame(rows, columns=CLIP_COLUMNS).to_parquet(clips)
    videos = root / "videos.parquet"
    pd.DataFrame(
        {
            "video_id": ["video0", "video1"],
            "origin": "test",
            "licence": "CC0-1.0",
            "author": "a",
            "author_url": None,
            "page_url": None,
            "source_name": "x.mp4",
        }
    ).to_parquet(videos)
    registry = {
        family: {
            "id": str(folder),
            "revision": None,
            "dtype": "auto",
            "device": "cpu",
            "batch_size": 4,
        }
        for family, folder in models.items()
    }
    return {"root": root, "clips": clips, "videos": videos, "models": registry}


def run_control(shard, kinds=("depth", "hed", "scribble", "canny"), out="control"):
    root = shard["root"]
    return control_shard(
        shard["clips"],
        0,
        list(kinds),
        CONTROL_CFG,
        shard["models"],
        ENCODE,
        root / out,
        root / f"{out}.parquet",
        root / f"{out}.rejects.parquet",
    )


def test_control_maps_are_videos_aligned_with_their_clips(shard):
    table = run_control(shard)
    assert len(table) == 2 * 4 and set(table["kind"]) == {"depth", "hed", "scribble", "canny"}
    clips = pd.read_parquet(shard["clips"]).set_index("clip_id")
    for row in table.to_dict("records"):
        clip = clips.loc[row["clip_id"]]
        info = probe(row["path"])
        assert info.frames == row["frames"] == clip["frames"] == 9
        assert (info.height, info.width) == (row["height"], row["width"]) == (48, 80)
        assert abs(info.fps - clip["fps"]) < 1e-6
        maps = read_frames(row["path"]).astype(int)
        assert np.abs(maps[..., 0] - maps[..., 2]).max() <= 3  # gray
        params = json.loads(row["params"])
        if row["kind"] in ("depth", "hed", "scribble"):
            assert (
                params["model"]
                == row["model"]
                == shard["models"]["depth" if row["kind"] == "depth" else "hed"]["id"]
            )
        if row["kind"] == "depth":
            assert maps.min() <= 3 and maps.max() >= 252  # the clip spans 0..255 once
            assert params["low"] < params["high"]
        if row["kind"] == "scribble":
            luma = maps[..., 0]
            assert np.mean((luma < 48) | (luma > 207)) > 0.95  # binary up to H.264 noise
    assert not (shard["root"] / "control.parquet.journal.jsonl").exists()
    prov = read_provenance(shard["root"] / "control.parquet")
    assert prov["stage"] == "control" and prov["code_version"]
    assert prov["params"]["kinds"] == ["depth", "hed", "scribble", "canny"]
    assert prov["params"]["models"]["depth"]["id"] == shard["models"]["depth"]["id"]
    assert read_provenance(shard["root"] / "control.rejects.parquet") == prov


def test_a_rejected_clip_is_journaled_and_not_redone_on_resume(shard, tmp_path, monkeypatch):
    clips = pd.read_parquet(shard["clips"])
    broken = {**clips.iloc[0].to_dict(), "clip_id": "broken", "video_id": "video9"}
    broken["path"] = str(tmp_path / "missing.mp4")  # unreadable: a reject, not a failed job
    table = pd.concat([clips.iloc[:1], pd.DataFrame([broken]), clips.iloc[1:]], ignore_index=True)
    table.to_parquet(tmp_path / "clips.parquet")
    reads = []
    real_read = control_mod.read_frames

    def reading(path, die_at=None):
        reads.append(Path(path).stem)
        if len(reads) == die_at:
            raise KeyboardInterrupt("killed")
        return real_read(path)

    def run(die_at=None):
        monkeypatch.setattr(control_mod, "read_frames", lambda p: reading(p, die_at))
        return control_shard(
            tmp_path / "clips.parquet", 0, ["canny"], CONTROL_CFG, {}, ENCODE,
            tmp_path / "media", tmp_path / "maps.parquet", tmp_path / "rejects.parquet",
        )  # fmt: skip

    with pytest.raises(KeyboardInterrupt):
        run(die_at=3)  # clip0 made, the broken clip rejected, killed on clip1
    assert reads == ["clip0", "missing", "clip1"]
    reads.clear()
    maps = run()
    assert reads == ["clip1"]  # neither the finished clip nor the rejected one is redone
    assert list(maps["clip_id"]) == ["clip0", "clip1"]
    rejects = pd.read_parquet(tmp_path / "rejects.parquet")
    assert list(rejects["video_id"]) == ["video9"] and set(rejects["stage"]) == {"control"}
    assert rejects["path"].iloc[0] == broken["path"]


def test_a_killed_control_job_resumes_without_redoing_finished_clips(shard, monkeypatch):
    calls = []
    real_call = control_mod.ControlMapper.__call__

    def dies_on_second_clip(self, frames):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_call(self, frames)

    monkeypatch.setattr(control_mod.ControlMapper, "__call__", dies_on_second_clip)
    with pytest.raises(KeyboardInterrupt):
        run_control(shard, kinds=("depth",), out="resume")
    journal = shard["root"] / "resume.parquet.journal.jsonl"
    assert journal.exists() and len(journal.read_text().splitlines()) == 1
    monkeypatch.setattr(control_mod.ControlMapper, "__call__", real_call)
    counted = []
    monkeypatch.setattr(
        control_mod.ControlMapper,
        "__call__",
        lambda self, frames: counted.append(1) or real_call(self, frames),
    )
    table = run_control(shard, kinds=("depth",), out="resume")
    assert len(counted) == 1 and len(table) == 2 and not journal.exists()


def control_pairs(shard, task, control, root):
    """The control-pairs job of ``task`` for the test shard, from the ``control`` map table."""
    job = PairJob(
        task,
        0,
        shard["clips"],
        {"clip_fraction": 1.0},
        0,
        root / "pairs.parquet",
        dataset=root / "dataset",
        rejects=root / "rejects.parquet",
        control=control,
    )
    return make_task_pairs(job, stage="control")


@pytest.mark.parametrize("task", task_ids("control"))
def test_detector_pairs_link_the_clip_and_its_map(shard, task, tmp_path):
    control = shard["root"] / "control.parquet"
    if not control.exists():
        run_control(shard)
    kind, map_is_target = get(task).control, get(task).map_is_target
    dataset = tmp_path / "dataset"
    df = control_pairs(shard, task, control, tmp_path)
    assert len(df) == 2
    maps = pd.read_parquet(control)
    clips = pd.read_parquet(shard["clips"]).set_index("clip_id")
    for row in df.to_dict("records"):
        src, tgt = dataset / row["source_path"], dataset / row["target_path"]
        cmap = maps[(maps["clip_id"] == row["clip_id"]) & (maps["kind"] == kind)].iloc[0]
        expected_map, expected_clip = (tgt, src) if map_is_target else (src, tgt)
        assert os.path.samefile(expected_map, cmap["path"])  # a hard link, no copy
        assert os.path.samefile(expected_clip, clips.loc[row["clip_id"], "path"])
        assert row["maker"].startswith(f"model:{kind}:") and json.loads(row["params"])["model"]
        assert row["instruction"] and row["template_id"].startswith(f"{task}/")
        assert row["frames"] == 9 and row["licence"] == "CC0-1.0"


def test_a_clip_without_a_map_is_a_recorded_reject(shard, tmp_path):
    control = shard["root"] / "control.parquet"
    if not control.exists():
        run_control(shard)
    maps = pd.read_parquet(control)
    partial = tmp_path / "partial.parquet"
    maps[maps["clip_id"] != "clip1"].to_parquet(partial)
    df = control_pairs(shard, "depth_detection", partial, tmp_path)
    rejects = pd.read_parquet(tmp_path / "rejects.parquet")
    assert list(df["clip_id"]) == ["clip0"]
    assert len(rejects) == 1 and "no depth map" in rejects["reason"].iloc[0]
    assert Path(tmp_path / "pairs.parquet").exists()


def test_captions_are_short_and_fit_clips_token_limit(shard, tmp_path):
    from senorita.captions import caption_shard, choose_caption, fit_clip_tokens, sample_indices

    tiny = build_tiny_models(tmp_path / "tiny", ("captioner", "clip"))
    models = {
        "captioner": {
            "id": str(tiny["captioner"]),
            "revision": None,
            "dtype": "auto",
            "device": "cpu",
            "batch_size": 2,
            "max_new_tokens": 12,
            "min_new_tokens": 3,
            "prompt": None,
        },
        "clip": {
            "id": str(tiny["clip"]),
            "revision": None,
            "dtype": "auto",
            "device": "cpu",
            "batch_size": 1,
        },
    }
    cfg = {"enabled": True, "frames": 3, "max_clip_tokens": 77, "resources": {}}
    df = caption_shard(
        shard["clips"], 0, cfg, models, tmp_path / "captions.parquet", tmp_path / "rejects.parquet"
    )
    assert len(df) == 2 and (df["caption"].str.len() > 0).all()
    assert (df["clip_tokens"] <= 77).all() and df["clip_tokens"].max() > 2
    assert all(len(f) == 3 for f in df["frame_captions"])
    assert [list(i) for i in df["frame_indices"]] == [[1, 4, 7]] * 2
    # The helpers: even sampling, majority with a middle tie-break, and the token fit.
    assert sample_indices(33, 1) == [16] and sample_indices(33, 3) == [5, 16, 27]
    assert choose_caption(["a cat", "a dog", "a dog"]) == "a dog"
    assert choose_caption(["a cat", "a dog", "a bird"]) == "a dog"
    assert choose_caption(["", ""]) == ""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["clip"])
    long = "a very long caption " * 20  # the tiny tokenizer has one token per character
    text, n, truncated = fit_clip_tokens(long, tokenizer, 77)
    assert truncated and n <= 77 and long.startswith(text) and len(text) > 40
    word, n, truncated = fit_clip_tokens("x" * 100, tokenizer, 77)  # one overlong "word"
    assert truncated and n <= 77 and word and set(word) == {"x"}
    assert fit_clip_tokens("a dog", tokenizer, 77) == ("a dog", 6, False)  # a</w> d o g</w> + 2
    # The table records what made it, as the pair tables do.
    prov = read_provenance(tmp_path / "captions.parquet")
    assert prov["stage"] == "captions" and prov["params"]["params"]["frames"] == cfg["frames"]
    assert prov["params"]["models"]["captioner"]["id"] == str(tiny["captioner"])
    assert read_provenance(tmp_path / "rejects.parquet") == prov
