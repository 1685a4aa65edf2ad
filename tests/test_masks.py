"""Stage 4: object phrases (VLM), boxes (Grounding DINO), SAM2 video masks, and grounding pairs.

The models are the tiny random ones, so the checks are structural (shapes, frame counts, value
ranges, what is kept and why); the geometry helpers are checked exactly.
"""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO
from senorita.atomic import read_provenance
from senorita.clips import CLIP_COLUMNS
from senorita.masks import (
    MASK_COLUMNS,
    Annotator,
    area_ok,
    dilate,
    frame_areas,
    load_masks,
    mask_shard,
    merge_boxes,
    save_masks,
)
from senorita.models import ModelSpec
from senorita.models.detector import Box, BoxDetector
from senorita.models.segmenter import VideoSegmenter
from senorita.models.vlm import ObjectLister
from senorita.motion import motion
from senorita.pairs import PairJob, make_task_pairs
from senorita.testing.tiny import build_tiny_models
from senorita.video import probe, read_frames, write_frames

FAMILIES = ("vlm", "detector", "segmenter")
MASKS_CFG = {
    "max_phrases": 5,
    "max_words": 3,
    "vocabulary": ["square"],
    "key_frame": "first",
    "box_threshold": 0.0,
    "text_threshold": 0.0,
    "nms_iou": 0.8,
    "min_area": 0.0,
    "max_area": 1.0,
    "dilate_px": 0,
    "resources": {"mem_mb": 1000, "runtime": 10},
}
ENCODE = {"crf": 18, "preset": "ultrafast"}
T, H, W = 9, 96, 160


def moving_square(t=T, h=H, w=W, size=32, step=6) -> tuple[np.ndarray, list[tuple]]:
    """A white square sliding right over a dark textured background, and its box per frame."""
    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 80, (6, 10, 3), dtype=np.uint8), (w, h))
    frames, boxes = [], []
    for k in range(t):
        frame = base.copy()
        x0, y0 = 10 + step * k, 30
        frame[y0 : y0 + size, x0 : x0 + size] = 255
        frames.append(frame)
        boxes.append((x0, y0, x0 + size, y0 + size))
    return np.stack(frames), boxes


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("masks")
    folders = build_tiny_models(root / "tiny", FAMILIES)
    registry = {
        f: {"id": str(p), "revision": None, "dtype": "auto", "device": "cpu", "batch_size": 2}
        for f, p in folders.items()
    }
    registry["vlm"].update(trust_remote_code=False, min_new_tokens=4, max_new_tokens=8)
    registry["segmenter"]["postprocessing"] = False
    return {"root": root, "models": registry}


@pytest.fixture(scope="module")
def shard(tiny):
    """Two clips of a moving square, as the clips stage leaves them."""
    root = tiny["root"]
    frames, _ = moving_square()
    rows = []
    for i in range(2):
        path = root / "clips" / f"clip{i}.mp4"
        moved = np.roll(frames, 7 * i, axis=2)
        write_frames(path, moved, 8.0, crf=18, preset="ultrafast")
        rows.append(
            {
                "clip_id": f"clip{i}",
                "video_id": f"video{i}",
                "shard": 0,
                "start_frame": 0,
                "end_frame": 2 * T - 1,
                "start_s": 0.0,
                "frames": T,
                "stride": 2,
                "fps": 8.0,
                "height": H,
                "width": W,
                "path": str(path),
                "sha256": "",
                "motion": motion(moved),
                "static": motion(moved) < 0.25,
                "origin": "test",
                "licence": "CC0-1.0",
                "author": "a",
            }
        )
    clips = root / "clips.parquet"
    pd.DataFrame(rows, columns=CLIP_COLUMNS).to_parquet(clips)
    videos = root / "videos.parquet"
    pd.DataFrame(
        {"video_id": ["video0", "video1"], "origin": "test", "licence": "CC0-1.0", "author": "a"}
    ).to_parquet(videos)
    return {**tiny, "clips": clips, "videos": videos}


def spec(tiny, family) -> ModelSpec:
    return ModelSpec.from_config(tiny["models"], family)


# -- loaders: save_pretrained / from_pretrained round trips with the real inference call --------


def test_vlm_round_trips_and_answers_each_image(tiny):
    lister = ObjectLister.load(spec(tiny, "vlm"))
    assert not lister.cogvlm  # a chat-template model
    frames, _ = moving_square()
    answers = lister(list(frames[:3]))
    assert len(answers) == 3 and all(isinstance(a, str) and a for a in answers)
    assert answers == lister(list(frames[:3]))  # greedy: the same answer twice


def test_vlm_without_a_chat_template_is_refused(tiny, tmp_path):
    folder = shutil.copytree(tiny["models"]["vlm"]["id"], tmp_path / "vlm")
    templates = [*folder.glob("chat_template.*")]
    assert templates  # where transformers keeps a processor's template
    for path in templates:
        path.unlink()
    entry = {**tiny["models"]["vlm"], "id": str(folder)}
    with pytest.raises(ValueError, match=r"models\.vlm\.id .*no chat template"):
        ObjectLister.load(ModelSpec.from_config({"vlm": entry}, "vlm"))


def test_a_cogvlm2_style_remote_code_model_answers_through_its_own_interface(tmp_path):
    """CogVLM2 ships its model as remote code with build_conversation_input_ids; a tiny model
    with that interface (tests/remote_code) loads with trust_remote_code and answers."""
    from remote_code.configuration_tinycogvlm import TinyCogVLMConfig
    from remote_code.modeling_tinycogvlm import TinyCogVLMForCausalLM

    from senorita.testing.tiny import tiny_byte_tokenizer

    tokenizer = tiny_byte_tokenizer()
    config = TinyCogVLMConfig(
        language={
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 256,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    )
    config.auto_map = {
        "AutoConfig": "configuration_tinycogvlm.TinyCogVLMConfig",
        "AutoModelForCausalLM": "modeling_tinycogvlm.TinyCogVLMForCausalLM",
    }
    torch.manual_seed(0)
    TinyCogVLMForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    for code in (REPO / "tests" / "remote_code").glob("*_tinycogvlm.py"):
        shutil.copy(code, tmp_path)
    entry = {"id": str(tmp_path), "revision": None, "dtype": "auto", "device": "cpu"}
    entry.update(batch_size=2, trust_remote_code=True, min_new_tokens=4, max_new_tokens=8)
    lister = ObjectLister.load(ModelSpec.from_config({"vlm": entry}, "vlm"))
    assert lister.cogvlm
    frames, _ = moving_square()
    answers = lister(list(frames[:2]))
    assert len(answers) == 2 and all(isinstance(a, str) and a for a in answers)
    assert answers == lister(list(frames[:2]))


def test_a_qwen2_5_vl_twin_answers_through_the_chat_template_path(tmp_path):
    """Qwen2.5-VL, the schema's example of a chat VLM: its transformers processor needs
    torchvision for its video part, which this project keeps out, so the family loads it without
    (images only). The twin keeps the real config's flags, files and token meanings."""
    from transformers import AutoConfig, AutoTokenizer, Qwen2_5_VLConfig

    from senorita.testing.real_configs import differences, real_config
    from senorita.testing.tiny import qwen2_5_vl as qwen

    out = qwen.build_qwen2_5_vl(tmp_path / "qwen")
    real = Qwen2_5_VLConfig(**real_config(qwen.REPO))
    twin = AutoConfig.from_pretrained(out)
    assert (
        differences(real.to_dict(), twin.to_dict(), qwen.SIZE_KEYS | set(qwen.TOKEN_ID_KEYS)) == []
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    for token, key in (
        ("<|image_pad|>", "image_token_id"),
        ("<|vision_start|>", "vision_start_token_id"),
    ):
        assert (
            tokenizer.convert_tokens_to_ids(token)
            == getattr(twin, key)
            == qwen.twin_id(getattr(real, key))
        )
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    for name in ("preprocessor_config.json", "chat_template.json", "generation_config.json"):
        assert (out / name).is_file()

    entry = {"id": str(out), "revision": None, "dtype": "auto", "device": "cpu"}
    entry.update(batch_size=2, trust_remote_code=False, min_new_tokens=4, max_new_tokens=8)
    lister = ObjectLister.load(ModelSpec.from_config({"vlm": entry}, "vlm"))
    assert not lister.cogvlm and type(lister.processor).__name__ == "Qwen2_5_VLProcessor"
    prompt = lister.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}],
        add_generation_prompt=True,
    )
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert "<|vision_start|><|image_pad|><|vision_end|>?" in prompt
    frames, _ = moving_square()
    answers = lister(list(frames[:3]))
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    assert answers == lister(list(frames[:3]))  # greedy: the same answer twice


def test_detector_gives_at_most_one_box_per_phrase_inside_the_frame(tiny):
    detector = BoxDetector.load(spec(tiny, "detector"))
    frames, _ = moving_square()
    boxes = detector(frames[0], ["square", "red ball", "tree"], 0.0, 0.0)
    assert 1 <= len(boxes) <= 3 and len({b.phrase for b in boxes}) == len(boxes)
    for b in boxes:
        x0, y0, x1, y1 = b.box
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H and 0 <= b.score <= 1
    assert detector(frames[0], ["square"], 1.0, 0.0) == []  # nothing scores above 1


def test_a_phrase_longer_than_the_detectors_text_positions_is_cut_not_a_crash(tiny):
    detector = BoxDetector.load(spec(tiny, "detector"))
    limit = detector.model.config.max_text_len
    long_phrase = "strawberry " * limit  # far more tokens than the model has text positions
    assert len(detector.processor.tokenizer(long_phrase).input_ids) > limit
    frames, _ = moving_square()
    boxes = detector(frames[0], [long_phrase, "square"], 0.0, 0.0)
    assert {b.phrase for b in boxes} <= {long_phrase, "square"} and boxes


@pytest.mark.parametrize("key_frame", [0, 4])
def test_sam2_propagates_a_box_to_a_mask_on_every_frame(tiny, key_frame):
    segmenter = VideoSegmenter.load(spec(tiny, "segmenter"))
    frames, boxes = moving_square()
    masks = segmenter(frames, [boxes[key_frame], (100, 5, 150, 40)], key_frame=key_frame)
    # One mask per box and frame at the clip's size (every frame visited, or it raises).
    assert masks.shape == (2, T, H, W) and masks.dtype == bool
    again = segmenter(frames, [boxes[key_frame], (100, 5, 150, 40)], key_frame=key_frame)
    assert np.array_equal(masks, again)  # deterministic
    assert segmenter(frames, []).shape == (0, T, H, W)


def test_segmenter_checkpoint_errors_name_the_field(tmp_path):
    entry = {"id": str(tmp_path), "revision": None, "dtype": "auto", "device": "cpu"}
    with pytest.raises(ValueError, match=r"models\.segmenter\.id .*sam2\.json"):
        VideoSegmenter.load(
            ModelSpec.from_config({"segmenter": {**entry, "batch_size": 1}}, "segmenter")
        )
    (tmp_path / "w.pt").write_bytes(b"")
    pt = {**entry, "id": str(tmp_path / "w.pt"), "batch_size": 1}
    with pytest.raises(ValueError, match=r"models\.segmenter\.config"):
        VideoSegmenter.load(ModelSpec.from_config({"segmenter": pt}, "segmenter"))


# -- geometry and storage -------------------------------------------------------------------------


def test_masks_are_stored_losslessly_and_compactly(tmp_path):
    rng = np.random.default_rng(0)
    masks = np.zeros((3, T, H, W), bool)
    masks[:, :, 20:60, 30:90] = True
    masks ^= rng.random(masks.shape) < 0.01  # some noise so compression has work to do
    path = tmp_path / "m.npz"
    save_masks(path, masks)
    back = load_masks(path)
    assert back.dtype == bool and np.array_equal(back, masks)
    assert path.stat().st_size < masks.size / 8  # under one bit per pixel


def test_dilation_grows_by_the_configured_pixels():
    masks = np.zeros((1, 1, 50, 50), bool)
    masks[0, 0, 20:30, 20:30] = True
    grown = dilate(masks, 3)
    assert grown[0, 0, 17:33, 20:30].all() and grown[0, 0, 20:30, 17:33].all()
    assert not grown[0, 0, 15, 25] and not grown[0, 0, 25, 34]
    assert grown[masks].all() and np.array_equal(dilate(masks, 0), masks)


def test_area_limits_drop_masks_outside_them():
    masks = np.zeros((3, 2, 10, 10), bool)
    masks[0, :, :1, :1] = True  # 1%
    masks[1, :, :5, :] = True  # 50%
    masks[2] = True  # 100%
    areas = frame_areas(masks)
    assert np.allclose(areas[:, 0], [0.01, 0.5, 1.0])
    assert area_ok(areas, 0.005, 0.6).tolist() == [True, True, False]
    assert area_ok(areas, 0.02, 0.6).tolist() == [False, True, False]


def test_overlapping_boxes_of_two_phrases_are_one_object():
    boxes = [
        Box("man", (10, 10, 50, 90), 0.6),
        Box("person", (11, 10, 50, 91), 0.8),
        Box("dog", (60, 60, 90, 90), 0.5),
    ]
    kept = merge_boxes(boxes, 0.8)
    assert [b.phrase for b in kept] == ["person", "dog"]


def test_annotator_drops_masks_outside_the_area_limits_with_a_reason(tiny):
    annotator = Annotator({**MASKS_CFG, "min_area": 1.01}, tiny["models"])
    frames, _ = moving_square()
    boxes, masks, why = annotator.objects(frames, ["square"])
    assert boxes == [] and len(masks) == 0 and why.startswith("every mask outside the area limits")


# -- the stage and the grounding task -----------------------------------------------------------


def run(shard, name, **cfg):
    root = shard["root"]
    return mask_shard(
        shard["clips"],
        0,
        {**MASKS_CFG, **cfg},
        shard["models"],
        root / name,
        root / f"{name}.parquet",
        root / f"{name}.rejects.parquet",
    )


def test_mask_shard_records_objects_and_masks_per_clip(shard):
    table = run(shard, "masks")
    assert list(table.columns) == MASK_COLUMNS
    assert set(table["clip_id"]) == {"clip0", "clip1"}
    for row in table.to_dict("records"):
        masks = load_masks(row["mask_path"])
        assert masks.shape[1:] == (T, H, W) == (row["frames"], row["height"], row["width"])
        areas = masks[row["object"]].mean(axis=(1, 2))
        assert np.allclose(areas, row["frame_areas"], atol=1e-4)
        assert row["area_min"] <= row["area_mean"] <= row["area_max"]
        assert "square" in row["phrases"] and row["phrase"] in row["phrases"]
        x0, y0, x1, y1 = row["box"]
        assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
        assert set(json.loads(row["models"])) == {"vlm", "detector", "segmenter"}
    assert pd.read_parquet(shard["root"] / "masks.rejects.parquet").empty
    # A rerun with the table in place reuses nothing stale and changes nothing.
    again = run(shard, "masks")
    pd.testing.assert_frame_equal(
        table.drop(columns="code_version"), again.drop(columns="code_version")
    )


def test_a_killed_mask_job_resumes_without_redoing_finished_clips(shard, monkeypatch):
    if not (shard["root"] / "masks.parquet").exists():
        run(shard, "masks")
    whole = pd.read_parquet(shard["root"] / "masks.parquet")
    asked, segmented = [], []
    real_vlm, real_objects = ObjectLister.__call__, Annotator.objects

    def vlm(self, images):
        asked.append(len(images))
        return real_vlm(self, images)

    def objects(self, frames, phrases):
        segmented.append(1)
        if die and len(segmented) == 2:
            raise KeyboardInterrupt("killed")
        return real_objects(self, frames, phrases)

    monkeypatch.setattr(ObjectLister, "__call__", vlm)
    monkeypatch.setattr(Annotator, "objects", objects)
    die = True
    with pytest.raises(KeyboardInterrupt):
        run(shard, "resumed")
    assert asked == [2]  # both clips' key frames in one VLM batch (batch_size 2)
    journal = shard["root"] / "resumed.parquet.journal.jsonl"
    assert len(journal.read_text().splitlines()) == 1
    asked.clear(), segmented.clear()
    die = False
    run(shard, "resumed")
    assert asked == [1] and segmented == [1] and not journal.exists()
    table = pd.read_parquet(shard["root"] / "resumed.parquet")
    table["mask_path"] = table["mask_path"].str.replace("/resumed/", "/masks/")
    pd.testing.assert_frame_equal(table, whole)
    prov = read_provenance(shard["root"] / "resumed.parquet")
    assert prov["stage"] == "masks" and set(prov["params"]["models"]) == set(FAMILIES)


def test_a_clip_without_objects_is_a_recorded_reason_not_a_failure(shard, monkeypatch):
    # No box scores above 1: nothing is found, every clip says why, and no mask file is left.
    table = run(shard, "nobox", box_threshold=1.0)
    rejects = pd.read_parquet(shard["root"] / "nobox.rejects.parquet")
    assert table.empty and len(rejects) == 2
    # the phrases tried: the (noise) VLM's, then the configured vocabulary
    assert rejects["reason"].str.startswith("no box above box_threshold 1.0 for: ").all()
    assert rejects["reason"].str.contains(r"for: (?:.+, )?square \(VLM: ", regex=True).all()
    assert not list((shard["root"] / "nobox").glob("*.npz"))
    # An answer that names nothing (what the tiny VLM says is noise, so it is made to name
    # nothing) and no vocabulary: no phrase at all.
    monkeypatch.setattr("senorita.masks.parse_phrases", lambda *args, **kwargs: [])
    run(shard, "nophrase", vocabulary=[])
    reasons = pd.read_parquet(shard["root"] / "nophrase.rejects.parquet")["reason"]
    assert len(reasons) == 2 and reasons.str.startswith("the VLM named no objects").all()
    # The grounding task makes no rows (and no pair rejects) from such a shard.
    root = shard["root"]
    pairs = grounding_pairs(shard, root / "nobox.parquet", "dataset-empty", "g-empty")
    assert pairs.empty and pd.read_parquet(root / "g-empty.rejects.parquet").empty


def grounding_pairs(shard, masks, dataset, name, max_words=None):
    """The grounding-pairs job of the test shard from the ``masks`` table."""
    root = shard["root"]
    job = PairJob(
        "grounding",
        0,
        shard["clips"],
        {"clip_fraction": 1.0},
        0,
        root / f"{name}.parquet",
        dataset=root / dataset,
        rejects=root / f"{name}.rejects.parquet",
        encode=ENCODE,
        max_words=max_words,
        masks=masks,
    )
    return make_task_pairs(job, stage="grounding")


def test_grounding_pairs_are_the_clip_and_its_object_mask_video(shard):
    root = shard["root"]
    run(shard, "masks")
    pairs = grounding_pairs(shard, root / "masks.parquet", "dataset", "g", max_words=40)
    assert len(pairs) == 2
    for row in pairs.to_dict("records"):
        params = json.loads(row["params"])
        assert params["phrase"] in row["instruction"]
        source = read_frames(root / "dataset" / row["source_path"])
        target = read_frames(root / "dataset" / row["target_path"])
        assert source.shape == target.shape == (T, H, W, 3)
        assert probe(root / "dataset" / row["target_path"]).frames == row["frames"] == T
        mask = load_masks(params["mask_path"])[params["object"]]
        # The target is the mask, white on black (up to the encoder's rounding).
        assert np.abs(target[..., 0].astype(int) - mask * 255).mean() < 8
        assert row["maker"].startswith("model:grounding:")
