"""Stage 4, per shard: object phrases, boxes and video masks of every clip.

For each clip: the VLM names the objects on the key frame (``senorita.phrases`` parses its answer,
plus the configured ``vocabulary``), Grounding DINO boxes each phrase on that frame (one best box
per phrase; boxes of different phrases that overlap by more than ``nms_iou`` are one object, the
higher score wins), and SAM2 turns each box into a mask propagated through the clip. Masks are
dilated by ``dilate_px`` and kept when their mean area (fraction of the frame) lies within
[``min_area``, ``max_area``].

Masks are stored losslessly and compactly: one ``<clip_id>.masks.npz`` per clip holding the
bit-packed (objects, frames, H×W/8) array and its shape. The shard's table has one row per kept
object (phrase, box, score, per-frame areas, mask path and index); a clip with no kept object is a
recorded reject that says why, and makes no grounding or expert rows.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from senorita.atomic import atomic_path
from senorita.models import ModelSpec
from senorita.phrases import parse_phrases
from senorita.provenance import code_version, stage_provenance
from senorita.shards import Reject, model_ids, run_shard
from senorita.video import VideoError, read_frames

log = logging.getLogger(__name__)

FAMILIES = ("vlm", "detector", "segmenter")

MASK_COLUMNS = [
    "clip_id",
    "video_id",
    "shard",
    "object",
    "phrase",
    "box",
    "score",
    "key_frame",
    "mask_path",
    "frames",
    "height",
    "width",
    "area_mean",
    "area_min",
    "area_max",
    "frame_areas",
    "phrases",
    "vlm_answer",
    "models",
    "params",
    "code_version",
]


# -- compact lossless storage ---------------------------------------------------------------


def save_masks(path: Path, masks: np.ndarray) -> None:
    """Write (N, T, H, W) bool masks bit-packed and compressed, atomically."""
    masks = np.asarray(masks, dtype=bool)
    n, t, h, w = masks.shape
    packed = np.packbits(masks.reshape(n, t, h * w), axis=-1)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, packed=packed, shape=np.asarray(masks.shape, dtype=np.int64))


def load_masks(path: str | Path) -> np.ndarray:
    """The (N, T, H, W) bool masks ``save_masks`` wrote."""
    with np.load(path) as data:
        n, t, h, w = (int(v) for v in data["shape"])
        flat = np.unpackbits(data["packed"], axis=-1, count=h * w)
    return flat.reshape(n, t, h, w).astype(bool)


# -- per-object geometry ----------------------------------------------------------------------


def dilate(masks: np.ndarray, pixels: int) -> np.ndarray:
    """Grow each (…, H, W) mask by ``pixels`` with a disc (0: unchanged)."""
    if pixels <= 0:
        return masks
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    flat = masks.reshape(-1, *masks.shape[-2:]).astype(np.uint8)
    grown = np.stack([cv2.dilate(m, kernel) for m in flat])
    return grown.reshape(masks.shape).astype(bool)


def frame_areas(masks: np.ndarray) -> np.ndarray:
    """(N, T) fraction of each frame each object covers."""
    return masks.mean(axis=(-2, -1))


def area_ok(areas: np.ndarray, min_area: float, max_area: float) -> np.ndarray:
    """(N,) whether each object's mean area over the clip lies within the limits."""
    mean = areas.mean(axis=-1)
    return (mean >= min_area) & (mean <= max_area)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_boxes(boxes: list, iou: float) -> list:
    """Drop a box overlapping a higher-scoring one by more than ``iou`` (one object, two names)."""
    kept: list = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(box_iou(box.box, k.box) <= iou for k in kept):
            kept.append(box)
    return kept


def key_frame_index(n_frames: int, where: str) -> int:
    return 0 if where == "first" else n_frames // 2


# -- the stage ----------------------------------------------------------------------------------


class Annotator:
    """The three models, loaded once per shard job, and the per-clip computation."""

    def __init__(self, cfg: dict[str, Any], models: dict[str, Any]):
        from senorita.models.detector import BoxDetector
        from senorita.models.segmenter import VideoSegmenter
        from senorita.models.vlm import ObjectLister

        self.cfg = cfg
        self.specs = {f: ModelSpec.from_config(models, f) for f in FAMILIES}
        self.vlm = ObjectLister.load(self.specs["vlm"])
        self.detector = BoxDetector.load(self.specs["detector"])
        self.segmenter = VideoSegmenter.load(self.specs["segmenter"])

    def provenance(self) -> dict[str, Any]:
        return {f: spec.provenance() for f, spec in self.specs.items()}

    def phrases(self, answer: str) -> list[str]:
        named = parse_phrases(answer, self.cfg["max_phrases"], self.cfg["max_words"])
        extra = [p for p in self.cfg["vocabulary"] if p not in named]
        return [*named, *extra]

    def objects(self, frames: np.ndarray, phrases: list[str]) -> tuple[list, np.ndarray, str]:
        """Kept boxes, their (N, T, H, W) masks, and why nothing was kept (or "")."""
        cfg = self.cfg
        key = key_frame_index(len(frames), cfg["key_frame"])
        if not phrases:
            return [], np.zeros((0, *frames.shape[:3]), bool), "the VLM named no objects"
        boxes = self.detector(frames[key], phrases, cfg["box_threshold"], cfg["text_threshold"])
        boxes = merge_boxes(boxes, cfg["nms_iou"])
        if not boxes:
            why = f"no box above box_threshold {cfg['box_threshold']} for: {', '.join(phrases)}"
            return [], np.zeros((0, *frames.shape[:3]), bool), why
        masks = self.segmenter(frames, [b.box for b in boxes], key_frame=key)
        masks = dilate(masks, cfg["dilate_px"])
        areas = frame_areas(masks)
        ok = area_ok(areas, cfg["min_area"], cfg["max_area"])
        if not ok.any():
            means = areas.mean(-1)
            sizes = ", ".join(f"{b.phrase} {a:.3f}" for b, a in zip(boxes, means, strict=True))
            why = (
                f"every mask outside the area limits [{cfg['min_area']}, {cfg['max_area']}]: "
                f"{sizes}"
            )
            return [], masks[:0], why
        return [b for b, k in zip(boxes, ok, strict=True) if k], masks[ok], ""


def mask_shard(
    clips: Path,
    shard: int,
    cfg: dict[str, Any],
    models: dict[str, Any],
    media: Path,
    out: Path,
    rejects_out: Path,
) -> pd.DataFrame:
    media.mkdir(parents=True, exist_ok=True)
    annotator: Annotator | None = None  # loaded on the first clip that needs work
    ready: dict[str, tuple[np.ndarray, str] | VideoError] = {}  # a batch's frames and VLM answers

    def ask_vlm(chunk: list[dict]) -> None:
        """Read a batch of clips and ask the VLM about their key frames in one call."""
        nonlocal annotator
        if annotator is None:
            annotator = Annotator(cfg, models)
        loaded = []
        for clip in chunk:
            try:
                loaded.append((clip, read_frames(clip["path"])))
            except VideoError as err:
                ready[clip["clip_id"]] = err
        keys = [f[key_frame_index(len(f), cfg["key_frame"])] for _, f in loaded]
        answers = annotator.vlm(keys) if keys else []
        for (clip, frames), answer in zip(loaded, answers, strict=True):
            ready[clip["clip_id"]] = (frames, answer)

    def annotate(clip: dict) -> list[dict[str, Any]]:
        got = ready.pop(clip["clip_id"])
        if isinstance(got, VideoError):
            raise got
        frames, answer = got
        return _annotate(annotator, clip, frames, answer, shard, cfg, media)

    return run_shard(
        "masks",
        shard,
        pd.read_parquet(clips),
        annotate,
        out=out,
        rejects_out=rejects_out,
        columns=MASK_COLUMNS,
        provenance=stage_provenance(
            "masks", shard=shard, params=cfg, models=model_ids(models, FAMILIES)
        ),
        files=lambda row: [row["mask_path"]],
        media=media,
        batch=int(models["vlm"].get("batch_size", 1)),
        prepare=ask_vlm,
    )


def _annotate(
    annotator: Annotator,
    clip: dict,
    frames: np.ndarray,
    answer: str,
    shard: int,
    cfg: dict[str, Any],
    media: Path,
) -> list[dict[str, Any]]:
    """One clip's object rows (its mask file written); Reject with the reason when none is kept."""
    phrases = annotator.phrases(answer)
    boxes, masks, why = annotator.objects(frames, phrases)
    if not boxes:
        short = " ".join(answer.split())[:200]
        raise Reject(f"{why} (VLM: {short!r})")
    name = f"{clip['clip_id']}.masks.npz"
    save_masks(media / name, masks)
    areas = frame_areas(masks)
    key = key_frame_index(len(frames), cfg["key_frame"])
    models = json.dumps(annotator.provenance(), sort_keys=True)
    params = json.dumps(cfg, sort_keys=True)
    return [
        {
            "clip_id": clip["clip_id"],
            "video_id": clip["video_id"],
            "shard": shard,
            "object": i,
            "phrase": box.phrase,
            "box": [round(v, 2) for v in box.box],
            "score": round(box.score, 4),
            "key_frame": key,
            "mask_path": (media / name).as_posix(),
            "frames": int(masks.shape[1]),
            "height": int(masks.shape[2]),
            "width": int(masks.shape[3]),
            "area_mean": float(areas[i].mean()),
            "area_min": float(areas[i].min()),
            "area_max": float(areas[i].max()),
            "frame_areas": [round(float(a), 5) for a in areas[i]],
            "phrases": phrases,
            "vlm_answer": answer,
            "models": models,
            "params": params,
            "code_version": code_version(),
        }
        for i, box in enumerate(boxes)
    ]
