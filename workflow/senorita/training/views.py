"""Training data views over the annotated shards, one per expert, following the paper's recipes.

A view draws one sample from a seeded generator: the clip's first ``frames`` frames as the clips
stage cut them (its stride is already applied: a clip is read frame by frame, never strided
again), resized to height × width, the expert's mask and prompt, and its control maps. A clip,
mask or control map shorter than ``frames`` is an error naming it, never padded. ``kind`` names
the sample type, so the proportions can be checked and logged.

Every expert's prompt is dropped (made empty) with probability ``prompt_dropout`` (0.1), drawn
from the same seeded generator: the experts run with classifier-free guidance, whose
unconditional branch is the empty prompt, so they must see it in training.

- remover: 90% a mask and phrase from an unrelated clip over this clip, "Remove {obj}" (the
  target is the clip: whatever the mask covers must become background); 10% the clip's own mask,
  "Generate {obj}".
- inpainter: random shapes, random rectangles (both drifting over the frames), precise SAM2
  masks, or boxes around them, 0.25 each; frame 0's mask is zero.
- local stylizer: the clip's own mask, its control maps masked in the control branch, "It's
  {a/the/this} {obj}".
- global stylizer: the first frame and the video in the main branch, HED, Canny and depth in the
  control branch, the caption as prompt.
- super-resolver: the clip re-cut from its original video at height × width (the output size:
  ``senorita.recut``, aligned with the clip), optionally a random ``crop`` of it, is the target;
  the same frames degraded (``senorita.degrade``, ``degradation``) and resized back are the
  low-resolution condition; the caption is the prompt. Its tables are the clips, the captions
  and the ingest table (the original videos' paths).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from senorita.degrade import degrade
from senorita.ids import shard_name
from senorita.masks import load_masks
from senorita.recut import recut
from senorita.video import read_frames

KINDS = {
    "remover": ("unrelated", "own"),
    "inpainter": ("shapes", "rectangles", "sam2", "boxes"),
    "local_stylizer": ("own",),
    "global_stylizer": ("caption",),
    "super_resolver": ("degraded",),
}
# Experts whose samples need no object (mask).
NO_OBJECTS = ("global_stylizer", "super_resolver")
PRONOUNS = ("a", "the", "this")


@dataclass
class Sample:
    kind: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    prompt: str
    negative_prompt: str = ""
    mask: np.ndarray | None = None  # (T, H, W) bool
    controls: list[np.ndarray] | None = None  # HED, Canny, depth, each (T, H, W, 3) uint8
    source: str = ""  # the clip the frames come from (the latent cache's key)
    prompt_dropped: bool = False  # the prompt was emptied (``prompt_dropout``)
    low_res: np.ndarray | None = None  # the super-resolver's degraded input, at frames' size


def _concat(pattern: str, shards: int) -> pd.DataFrame:
    tables = [pd.read_parquet(pattern.format(shard=shard_name(i))) for i in range(shards)]
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


class AnnotatedClips:
    """The annotated shards' tables, joined: clips, objects, control maps and captions."""

    def __init__(self, patterns: dict[str, str], shards: int, cfg: dict[str, Any]):
        self.cfg = cfg
        self.clips = _concat(patterns["clips"], shards)
        if self.clips.empty:
            raise ValueError(f"no clips in {patterns['clips']} over {shards} shards")
        self.objects = _concat(patterns["masks"], shards) if "masks" in patterns else None
        control = _concat(patterns["control"], shards) if "control" in patterns else None
        self.maps = (
            {(r["clip_id"], r["kind"]): r["path"] for r in control.to_dict("records")}
            if control is not None and len(control)
            else {}
        )
        captions = _concat(patterns["captions"], shards) if "captions" in patterns else None
        self.captions = (
            dict(captions[["clip_id", "caption"]].to_numpy())
            if captions is not None and len(captions)
            else {}
        )
        self.paths = dict(self.clips[["clip_id", "path"]].to_numpy())
        # The original videos (the super-resolver re-cuts its targets from them).
        videos = _concat(patterns["ingest"], shards) if "ingest" in patterns else None
        self.videos = (
            dict(videos[["video_id", "path"]].to_numpy())
            if videos is not None and len(videos)
            else {}
        )

    def _first(self, array: np.ndarray, what: str) -> np.ndarray:
        """The first ``frames`` frames, consecutive: the clips stage already took every
        stride-th source frame, so striding here again would skip real motion."""
        n = self.cfg["frames"]
        if len(array) < n:
            raise ValueError(
                f"{what}: {len(array)} frames, but training takes {n} (train.frames); "
                "a clip shorter than a sample is not padded: cut longer clips or train on fewer "
                "frames"
            )
        return array[:n]

    def frames(self, path: str) -> np.ndarray:
        """The clip's first ``frames`` frames as cut, resized to height × width."""
        video = self._first(read_frames(path), path)
        return _resize(video, self.cfg["height"], self.cfg["width"], cv2.INTER_AREA)

    def high_res(self, clip_id: str) -> np.ndarray:
        """The clip's first ``frames`` frames re-cut from its original video at height × width,
        aligned with the clip (``senorita.recut``)."""
        row = self.clips[self.clips["clip_id"] == clip_id].iloc[0].to_dict()
        n, path = self.cfg["frames"], self.videos[row["video_id"]]
        if int(row["frames"]) < n:
            raise ValueError(
                f"clip {clip_id} ({path}): {row['frames']} frames, but training takes {n} "
                "(train.frames); a clip shorter than a sample is not padded"
            )
        return recut(path, row, self.cfg["height"], self.cfg["width"], frames=n)

    def mask(self, row: dict) -> np.ndarray:
        what = f"{row['mask_path']} (object {row['object']} of clip {row['clip_id']})"
        mask = self._first(load_masks(row["mask_path"])[int(row["object"])], what)
        return _resize(
            mask.astype(np.uint8), self.cfg["height"], self.cfg["width"], cv2.INTER_NEAREST
        ).astype(bool)

    def controls(self, clip_id: str) -> list[np.ndarray]:
        missing = [k for k in ("hed", "canny", "depth") if (clip_id, k) not in self.maps]
        if missing:
            raise KeyError(f"clip {clip_id} has no {', '.join(missing)} map")
        return [self.frames(self.maps[clip_id, k]) for k in ("hed", "canny", "depth")]


def _resize(video: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    if video.shape[1:3] == (height, width):
        return video
    return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in video])


def _draw(rng: np.random.Generator, probabilities: dict[str, float]) -> str:
    kinds = list(probabilities)
    p = np.asarray([probabilities[k] for k in kinds], dtype=float)
    return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


def random_shape(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random filled polygon or ellipse covering a few to a third of the frame."""
    canvas = np.zeros((height, width), np.uint8)
    if rng.random() < 0.5:
        center = (int(rng.integers(width)), int(rng.integers(height)))
        axes = (
            int(rng.integers(width // 10, width // 3)),
            int(rng.integers(height // 10, height // 3)),
        )
        cv2.ellipse(canvas, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        points = rng.integers(0, [width, height], size=(int(rng.integers(3, 8)), 2))
        cv2.fillPoly(canvas, [cv2.convexHull(points.astype(np.int32))], 1)
    return canvas.astype(bool)


def drifting(first: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A mask that drifts by a constant random velocity over the frames."""
    height, width = first.shape
    velocity = rng.uniform(-0.02, 0.02, size=2) * (width, height)
    out = np.empty((frames, height, width), bool)
    for t in range(frames):
        shift = np.float32([[1, 0, velocity[0] * t], [0, 1, velocity[1] * t]])
        out[t] = (
            cv2.warpAffine(first.astype(np.uint8), shift, (width, height), flags=cv2.INTER_NEAREST)
            > 0
        )
    return out


def box_of(mask: np.ndarray) -> np.ndarray:
    """Each frame's mask replaced by its bounding box."""
    out = np.zeros_like(mask)
    for t, m in enumerate(mask):
        ys, xs = np.nonzero(m)
        if len(ys):
            out[t, ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    return out


class ExpertView:
    """Samples for one expert; ``sample(rng)`` draws one."""

    def __init__(self, expert: str, data: AnnotatedClips, recipe: dict[str, Any]):
        self.expert = expert
        self.data = data
        self.recipe = recipe
        needs_objects = expert not in NO_OBJECTS
        objects = data.objects if data.objects is not None else pd.DataFrame()
        if needs_objects and objects.empty:
            raise ValueError(f"training the {expert}: no clip has an object (see the masks stage)")
        self.objects = objects.to_dict("records") if needs_objects else []
        if expert in ("local_stylizer", "global_stylizer"):
            with_maps = {c for (c, k) in data.maps if k == "depth"}
            self.objects = [o for o in self.objects if o["clip_id"] in with_maps]
            self.clip_ids = sorted(with_maps)
            if not self.clip_ids:
                raise ValueError(f"training the {expert}: no clip has control maps")
        elif expert == "super_resolver":
            ids = data.clips.loc[data.clips["video_id"].isin(list(data.videos)), "clip_id"]
            self.clip_ids = sorted(ids)
            if not self.clip_ids:
                raise ValueError(
                    f"training the {expert}: no clip's original video is in the ingest table"
                )
        else:
            self.clip_ids = sorted(data.paths)

    def kind(self, rng: np.random.Generator) -> str:
        """Draw a sample type with the recipe's probabilities."""
        if self.expert == "remover":
            p = self.recipe["unrelated_mask"]
            return _draw(rng, {"unrelated": p, "own": 1 - p})
        if self.expert == "inpainter":
            return _draw(rng, self.recipe["mask_types"])
        if self.expert == "global_stylizer":
            return "caption"
        if self.expert == "super_resolver":
            return "degraded"
        return "own"

    def sample(self, rng: np.random.Generator) -> Sample:
        kind = self.kind(rng)
        sample = getattr(self, f"_{self.expert}")(kind, rng)
        # Drawn from the step's generator like everything else, so a resumed run drops the
        # same prompts.
        if rng.random() < self.recipe["prompt_dropout"]:
            sample.prompt, sample.prompt_dropped = "", True
        return sample

    def _object(self, rng: np.random.Generator) -> dict:
        return self.objects[int(rng.integers(len(self.objects)))]

    def _remover(self, kind: str, rng: np.random.Generator) -> Sample:
        if kind == "own":
            obj = self._object(rng)
            path = self.data.paths[obj["clip_id"]]
            mask = self.data.mask(obj)
            return Sample(
                kind, self.data.frames(path), f"Generate {obj['phrase']}", "", mask, None, path
            )
        clip_id = self.clip_ids[int(rng.integers(len(self.clip_ids)))]
        others = [o for o in self.objects if o["clip_id"] != clip_id] or self.objects
        obj = others[int(rng.integers(len(others)))]
        path = self.data.paths[clip_id]
        mask = self.data.mask(obj)
        return Sample(kind, self.data.frames(path), f"Remove {obj['phrase']}", "", mask, None, path)

    def _inpainter(self, kind: str, rng: np.random.Generator) -> Sample:
        obj = self._object(rng)
        frames = self.data.frames(self.data.paths[obj["clip_id"]])
        n, h, w = frames.shape[:3]
        if kind == "shapes":
            mask = drifting(random_shape(rng, h, w), n, rng)
        elif kind == "rectangles":
            first = np.zeros((h, w), bool)
            y0, x0 = int(rng.integers(h // 2)), int(rng.integers(w // 2))
            first[
                y0 : y0 + int(rng.integers(h // 8, h // 2)),
                x0 : x0 + int(rng.integers(w // 8, w // 2)),
            ] = True
            mask = drifting(first, n, rng)
        else:
            mask = self.data.mask(obj)
            if kind == "boxes":
                mask = box_of(mask)
        mask[0] = False  # frame 0 is given: it guides the rest
        prompt = (
            f"It's {obj['phrase']}."
            if kind in ("sam2", "boxes")
            else self.data.captions.get(obj["clip_id"], "")
        )
        return Sample(kind, frames, prompt, "", mask, None, self.data.paths[obj["clip_id"]])

    def _local_stylizer(self, kind: str, rng: np.random.Generator) -> Sample:
        obj = self._object(rng)
        frames = self.data.frames(self.data.paths[obj["clip_id"]])
        pronoun = PRONOUNS[int(rng.integers(len(PRONOUNS)))]
        return Sample(
            kind,
            frames,
            f"It's {pronoun} {obj['phrase']}.",
            "",
            self.data.mask(obj),
            self.data.controls(obj["clip_id"]),
            self.data.paths[obj["clip_id"]],
        )

    def _global_stylizer(self, kind: str, rng: np.random.Generator) -> Sample:
        clip_id = self.clip_ids[int(rng.integers(len(self.clip_ids)))]
        frames = self.data.frames(self.data.paths[clip_id])
        prompt = self.data.captions.get(clip_id, "")
        controls = self.data.controls(clip_id)
        return Sample(kind, frames, prompt, "", None, controls, self.data.paths[clip_id])

    def _super_resolver(self, kind: str, rng: np.random.Generator) -> Sample:
        clip_id = self.clip_ids[int(rng.integers(len(self.clip_ids)))]
        frames = self.data.high_res(clip_id)
        top = left = 0
        if crop := self.recipe.get("crop"):
            # A window of the output: the model then trains at the size it is tiled at.
            height, width = int(crop[0]), int(crop[1])
            if height > frames.shape[1] or width > frames.shape[2]:
                raise ValueError(f"crop {height}x{width} is larger than the training size")
            top = int(rng.integers(frames.shape[1] - height + 1))
            left = int(rng.integers(frames.shape[2] - width + 1))
            frames = np.ascontiguousarray(frames[:, top : top + height, left : left + width])
        low = degrade(frames, rng, self.recipe.get("degradation"))
        prompt = self.data.captions.get(clip_id, "")
        # The latent cache's key: the re-cut window.
        h, w = frames.shape[1:3]
        source = f"{self.data.paths[clip_id]}#recut {h}x{w}+{top}+{left}"
        return Sample(kind, frames, prompt, "", None, None, source, low_res=low)


def patterns_for(expert: str, results: Path) -> dict[str, str]:
    """Where the annotated shards' tables are, for the tables this expert's view reads: the
    clips, and what its tasks' pair jobs read (the task registry's ``reads``); for the
    super-resolver, which makes no task's pairs, the clips, captions and ingest tables."""
    from senorita.tasks import all_tasks

    if expert == "super_resolver":
        return {t: f"{results}/{t}/{{shard}}.parquet" for t in ("clips", "captions", "ingest")}
    tasks = [t for t in all_tasks() if t.expert == expert]
    if not tasks:
        raise ValueError(f"no task in the registry is made by an expert named {expert!r}")
    reads = {r for t in tasks for r in t.reads}
    tables = ("clips", *(r for r in ("masks", "control", "captions") if r in reads))
    return {t: f"{results}/{t}/{{shard}}.parquet" for t in tables}
