"""Stage 5, per shard: control maps of every clip (depth, HED, fake scribble, Canny), as videos.

Each model loads once per shard job and runs batched over each clip's frames. A clip's maps are
written as ``<media>/<clip_id>.<kind>.mp4`` (gray RGB, same size, frame count and rate as the
clip) and listed in the shard's table, one row per clip and kind. The detector tasks and the
experts' control branches reuse these files.

- depth: relative inverse depth, normalised per clip (one pair of bounds for all frames) so it
  does not flicker; near is bright.
- hed: soft edges in [0, 1] stored as 0..255.
- scribble: binary fake scribble derived from the clip's HED map (``senorita.scribble``).
- canny: binary Canny edges with fixed thresholds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from senorita.models import ModelSpec, families_for
from senorita.operators.canny import canny_edges
from senorita.provenance import code_version, stage_provenance
from senorita.scribble import fake_scribble
from senorita.shards import model_ids, run_shard
from senorita.video import read_frames, write_frames

log = logging.getLogger(__name__)

KINDS = ("depth", "hed", "scribble", "canny")

CONTROL_COLUMNS = [
    "clip_id",
    "video_id",
    "shard",
    "kind",
    "path",
    "frames",
    "height",
    "width",
    "fps",
    "model",
    "revision",
    "params",
    "code_version",
]


def _gray(maps: np.ndarray) -> np.ndarray:
    return np.repeat(maps[..., None], 3, axis=-1)


class ControlMapper:
    """The models a set of kinds needs, loaded once, and the per-clip computation."""

    def __init__(self, kinds: list[str], cfg: dict[str, Any], models: dict[str, Any]):
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown control kinds: {sorted(unknown)}")
        self.kinds = [k for k in KINDS if k in kinds]
        self.cfg = cfg
        self.specs = {f: ModelSpec.from_config(models, f) for f in families_for(self.kinds)}
        self.depth = self.hed = None
        if "depth" in self.specs:
            from senorita.models.depth import DepthEstimator

            self.depth = DepthEstimator.load(self.specs["depth"])
        if "hed" in self.specs:
            from senorita.models.hed import HedDetector

            self.hed = HedDetector.load(self.specs["hed"], resolution=cfg["hed"]["resolution"])

    def model_of(self, kind: str) -> ModelSpec | None:
        family = {"depth": "depth", "hed": "hed", "scribble": "hed"}.get(kind)
        return self.specs.get(family) if family else None

    def __call__(self, frames: np.ndarray) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        """Each kind's (T, H, W, 3) uint8 map video and its parameters, for one clip's frames."""
        from senorita.models.depth import normalise_clip

        out: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
        if "depth" in self.kinds:
            pct = tuple(self.cfg["depth"]["percentiles"])
            depth, bounds = normalise_clip(self.depth(frames), pct)
            out["depth"] = (_gray(depth), {"percentiles": list(pct), **bounds})
        if "hed" in self.kinds or "scribble" in self.kinds:
            soft = np.rint(self.hed(frames) * 255).astype(np.uint8)
            res = {"resolution": self.cfg["hed"]["resolution"]}
            if "hed" in self.kinds:
                out["hed"] = (_gray(soft), res)
            if "scribble" in self.kinds:
                sc = self.cfg["scribble"]
                scribble = np.stack(
                    [
                        fake_scribble(f, sc["threshold"], sc["nms_sigma"], sc["stroke_sigma"])
                        for f in soft
                    ]
                )
                out["scribble"] = (_gray(scribble), {**res, **sc})
        if "canny" in self.kinds:
            low, high = self.cfg["canny"]["low"], self.cfg["canny"]["high"]
            edges = np.stack([canny_edges(f, low, high) for f in frames])
            out["canny"] = (_gray(edges), {"low": low, "high": high})
        return out


def control_shard(
    clips: Path,
    shard: int,
    kinds: list[str],
    cfg: dict[str, Any],
    models: dict[str, Any],
    encode: dict[str, Any],
    media: Path,
    out: Path,
    rejects_out: Path,
) -> pd.DataFrame:
    """Make the control maps of one shard's clips; resumable like every shard stage."""
    mapper: ControlMapper | None = None  # loaded on the first clip that needs work

    def make_maps(clip: dict[str, Any]) -> list[dict[str, Any]]:
        nonlocal mapper
        if mapper is None:
            mapper = ControlMapper(kinds, cfg, models)
        frames = read_frames(clip["path"])
        rows = []
        for kind, (video, params) in mapper(frames).items():
            path = media / f"{clip['clip_id']}.{kind}.mp4"
            write_frames(path, video, clip["fps"], encode["crf"], encode["preset"])
            spec = mapper.model_of(kind)
            prov = spec.provenance() if spec else {"model": None, "revision": None}
            rows.append(
                {
                    "clip_id": clip["clip_id"],
                    "video_id": clip["video_id"],
                    "shard": shard,
                    "kind": kind,
                    "path": str(path),
                    "frames": int(video.shape[0]),
                    "height": int(video.shape[1]),
                    "width": int(video.shape[2]),
                    "fps": float(clip["fps"]),
                    "model": prov["model"],
                    "revision": prov["revision"],
                    "params": json.dumps({**params, **prov}, sort_keys=True),
                    "code_version": code_version(),
                }
            )
        return rows

    return run_shard(
        "control",
        shard,
        pd.read_parquet(clips),
        make_maps,
        out=out,
        rejects_out=rejects_out,
        columns=CONTROL_COLUMNS,
        provenance=stage_provenance(
            "control",
            shard=shard,
            kinds=list(kinds),
            params=cfg,
            encode=encode,
            models=model_ids(models, families_for([k for k in KINDS if k in kinds])),
        ),
        # The kinds are part of the key: a journal left by a job with other kinds is redone.
        key=lambda clip: f"{clip['clip_id']}:{','.join(sorted(kinds))}",
        files=lambda row: [row["path"]],
        media=media,
    )
