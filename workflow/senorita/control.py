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

from senorita.atomic import write_table
from senorita.ingest import REJECT_COLUMNS
from senorita.journal import Journal, prune
from senorita.models import ModelSpec, families_for
from senorita.operators.canny import canny_edges
from senorita.progress import Progress
from senorita.provenance import code_version
from senorita.scribble import fake_scribble
from senorita.video import VideoError, read_frames, write_frames

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
    table = pd.read_parquet(clips)
    journal = Journal(out)
    mapper: ControlMapper | None = None  # loaded on the first clip that needs work
    rows, rejects = [], []
    progress = Progress(f"control {shard:05d}", total=len(table), unit="clips")
    for clip in table.to_dict("records"):
        paths = {k: media / f"{clip['clip_id']}.{k}.mp4" for k in kinds}
        done = journal.get(clip["clip_id"], *paths.values())
        if done is not None and {r["kind"] for r in done["rows"]} >= set(kinds):
            rows += [r for r in done["rows"] if r["kind"] in kinds]
            progress.skip()
            continue
        if mapper is None:
            mapper = ControlMapper(kinds, cfg, models)
        try:
            frames = read_frames(clip["path"])
            maps = mapper(frames)
            clip_rows = []
            for kind, (video, params) in maps.items():
                write_frames(paths[kind], video, clip["fps"], encode["crf"], encode["preset"])
                spec = mapper.model_of(kind)
                prov = spec.provenance() if spec else {"model": None, "revision": None}
                clip_rows.append(
                    {
                        "clip_id": clip["clip_id"],
                        "video_id": clip["video_id"],
                        "shard": shard,
                        "kind": kind,
                        "path": str(paths[kind]),
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
        except VideoError as err:
            rejects.append(
                {
                    "video_id": clip["video_id"],
                    "shard": shard,
                    "stage": "control",
                    "path": clip["path"],
                    "reason": str(err),
                }
            )
            progress.step()
            continue
        journal.record(clip["clip_id"], {"rows": clip_rows})
        rows += clip_rows
        progress.step()
    progress.done()
    df = pd.DataFrame(rows, columns=CONTROL_COLUMNS)
    write_table(pd.DataFrame(rejects, columns=REJECT_COLUMNS), rejects_out)
    write_table(df, out)
    journal.finish()
    removed = prune(media, {Path(p).name for p in df["path"]})
    log.info(
        "shard %d: %d control maps (%s) of %d clips (%d rejects, %d stale files removed)",
        shard,
        len(df),
        ",".join(kinds),
        len(table),
        len(rejects),
        removed,
    )
    return df
