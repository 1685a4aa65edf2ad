"""Pairs, per task and shard: one (source, instruction, target) pair per drawn clip.

Every task's pairs come out of one loop (``make_pairs``): a seeded draw decides whether the clip
gets a pair, the task's maker writes the two files (or says why it cannot), an instruction is
drawn from the task's templates, and the row is journaled so a killed job resumes. Makers:

- operator tasks: the clip is the target, the operator's output the source;
- detector tasks: the clip and its control map (hard links, no model runs here);
- grounding: the clip and one of its objects' mask video (white on black).

Files are laid out as in the released Señorita-2M: ``<pair_id>_org.mp4`` (source) beside
``<pair_id>.mp4`` (target), in ``<dataset>/<task>/<shard>/``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from senorita.atomic import link_or_copy, write_table
from senorita.ids import derive_seed, stable_hash
from senorita.ingest import REJECT_COLUMNS
from senorita.instructions import InstructionError, draw_instruction
from senorita.journal import Journal, prune
from senorita.operators import OPERATORS
from senorita.progress import Progress
from senorita.provenance import code_version, stage_provenance
from senorita.video import VideoError, read_frames, write_frames

log = logging.getLogger(__name__)

# Video fields copied into every pair row: attribution travels with the pair.
VIDEO_FIELDS = [
    "origin",
    "licence",
    "author",
    "author_url",
    "page_url",
    "source_name",
    "pexels_id",
    "rendition",
]

PAIR_COLUMNS = [
    "pair_id",
    "task",
    "instruction",
    "template_id",
    "source_path",
    "target_path",
    "clip_id",
    "video_id",
    "shard",
    "source_height",
    "source_width",
    "target_height",
    "target_width",
    "frames",
    "fps",
    "maker",
    "params",
    "seed",
    "code_version",
    *VIDEO_FIELDS,
]


class NoPair(Exception):
    """A clip the maker cannot pair: recorded as a reject (or skipped when ``record`` is false)."""

    def __init__(self, reason: str, record: bool = True):
        super().__init__(reason)
        self.record = record


@dataclass
class Made:
    """What a maker wrote for one pair: the fields only it knows."""

    source_shape: tuple[int, int]  # height, width
    target_shape: tuple[int, int]
    maker: str
    params: dict[str, Any]
    slots: dict[str, str] = field(default_factory=dict)  # instruction template slots
    frames: int | None = None  # when not the clip's (an expert generates a set count)
    instruction: tuple[str, str] | None = None  # (text, template id) written by a model


# A maker gets the clip's row, the pair's rng and the two paths to write.
Maker = Callable[[dict[str, Any], np.random.Generator, Path, Path], Made]


def make_pairs(
    task: str,
    shard: int,
    clips: Path,
    videos: Path,
    task_cfg: dict[str, Any],
    seed: int,
    dataset: Path,
    out: Path,
    rejects_out: Path,
    maker: Maker,
    provenance: dict[str, Any],
    max_words: int | None = None,
) -> pd.DataFrame:
    clip_table = pd.read_parquet(clips)
    video_table = pd.read_parquet(videos).set_index("video_id")
    media = dataset / task / f"{shard:05d}"
    media.mkdir(parents=True, exist_ok=True)
    journal = Journal(out)
    rows, rejects = [], []
    progress = Progress(f"pairs {task} {shard:05d}", total=len(clip_table), unit="clips")
    for clip in clip_table.to_dict("records"):
        pair_seed = derive_seed(seed, task, clip["clip_id"])
        rng = np.random.default_rng(pair_seed)
        if rng.random() >= task_cfg["clip_fraction"]:
            progress.skip()  # not drawn for this task: no work, not part of the rate
            continue
        pair_id = stable_hash("pair", task, clip["clip_id"])
        src, tgt = media / f"{pair_id}_org.mp4", media / f"{pair_id}.mp4"
        if (done := journal.get(pair_id, src, tgt)) is not None:
            rows.append(done)
            progress.skip()
            continue
        try:
            made = maker(clip, rng, src, tgt)
            # A slot filled from a model (a phrase) can make an instruction the dataset must not
            # carry: that pair is a reject, not a failed job.
            instruction, template_id = draw_instruction(task, rng, max_words, **made.slots)
            if made.instruction is not None:  # a model wrote one (checked where it was made)
                instruction, template_id = made.instruction
        except (VideoError, NoPair, InstructionError) as err:
            if getattr(err, "record", True):
                rejects.append(
                    {
                        "video_id": clip["video_id"],
                        "shard": shard,
                        "stage": f"pairs:{task}",
                        "path": clip["path"],
                        "reason": str(err),
                    }
                )
            progress.step()
            continue
        video = video_table.loc[clip["video_id"]]
        row = {
            "pair_id": pair_id,
            "task": task,
            "instruction": instruction,
            "template_id": template_id,
            "source_path": src.relative_to(dataset).as_posix(),
            "target_path": tgt.relative_to(dataset).as_posix(),
            "clip_id": clip["clip_id"],
            "video_id": clip["video_id"],
            "shard": shard,
            "source_height": int(made.source_shape[0]),
            "source_width": int(made.source_shape[1]),
            "target_height": int(made.target_shape[0]),
            "target_width": int(made.target_shape[1]),
            "frames": int(made.frames or clip["frames"]),
            "fps": float(clip["fps"]),
            "maker": made.maker,
            "params": json.dumps(made.params, sort_keys=True),
            "seed": pair_seed,
            "code_version": code_version(),
            **{f: _plain(video.get(f)) for f in VIDEO_FIELDS},
        }
        journal.record(pair_id, row)
        rows.append(row)
        progress.step()
    progress.done()
    df = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    prov = stage_provenance(
        "pairs", task=task, shard=shard, params=task_cfg, seed=seed, **provenance
    )
    write_table(pd.DataFrame(rejects, columns=REJECT_COLUMNS), rejects_out, prov)
    write_table(df, out, prov)
    journal.finish()
    keep = {Path(p).name for p in (*df["source_path"], *df["target_path"])}
    prune(media, keep)
    log.info("%s shard %d: %d pairs (%d rejects)", task, shard, len(df), len(rejects))
    return df


def _plain(value: Any) -> Any:
    """pandas' missing values as None, numpy scalars as Python ones (the journal is JSON)."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if value is None or (isinstance(value, float) and value != value) else value


def make_operator_pairs(
    task: str,
    shard: int,
    clips: Path,
    videos: Path,
    task_cfg: dict[str, Any],
    seed: int,
    encode: dict[str, Any],
    dataset: Path,
    out: Path,
    rejects_out: Path,
    max_words: int | None = None,
) -> pd.DataFrame:
    operator = OPERATORS[task]

    def make(clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        frames = read_frames(clip["path"])
        params = operator.draw(rng, task_cfg, frames.shape[1], frames.shape[2])
        source = operator(frames, params)
        crf = task_cfg.get("crf", encode["crf"])
        write_frames(src, source, clip["fps"], crf=crf, preset=encode["preset"])
        link_or_copy(clip["path"], tgt)
        return Made(source.shape[1:3], frames.shape[1:3], f"operator:{operator.name}", params)

    return make_pairs(
        task,
        shard,
        clips,
        videos,
        task_cfg,
        seed,
        dataset,
        out,
        rejects_out,
        make,
        {"encode": encode, "maker": f"operator:{operator.name}"},
        max_words=max_words,
    )


# Detector tasks: the control-map kind each one pairs with the clip, and whether the map is the
# target (detection: video -> map) or the source (to_video: map -> video).
CONTROL_TASKS: dict[str, tuple[str, bool]] = {
    "depth_detection": ("depth", True),
    "depth_to_video": ("depth", False),
    "hed_detection": ("hed", True),
    "hed_to_video": ("hed", False),
    "scribble_detection": ("scribble", True),
    "scribble_to_video": ("scribble", False),
}


def make_control_pairs(
    task: str,
    shard: int,
    clips: Path,
    videos: Path,
    control: Path,
    task_cfg: dict[str, Any],
    seed: int,
    dataset: Path,
    out: Path,
    rejects_out: Path,
) -> pd.DataFrame:
    """Pairs of a detector task from the shard's control maps (no model runs here).

    Both videos already exist (the clip and its map); the pair files are hard links to them.
    """
    kind, map_is_target = CONTROL_TASKS[task]
    maps = pd.read_parquet(control)
    maps = maps[maps["kind"] == kind].set_index("clip_id")

    def make(clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        if clip["clip_id"] not in maps.index:
            raise NoPair(f"no {kind} map for this clip (see the control stage's rejects)")
        cmap = maps.loc[clip["clip_id"]]
        clip_shape = (clip["height"], clip["width"])
        map_shape = (cmap["height"], cmap["width"])
        pairs = [(clip["path"], clip_shape), (cmap["path"], map_shape)]
        (source, source_shape), (target, target_shape) = pairs if map_is_target else pairs[::-1]
        link_or_copy(source, src)
        link_or_copy(target, tgt)
        params = json.loads(cmap["params"])
        maker = f"model:{kind}:{params.get('model')}@{params.get('revision') or 'local'}"
        return Made(source_shape, target_shape, maker, {"kind": kind, **params})

    return make_pairs(
        task, shard, clips, videos, task_cfg, seed, dataset, out, rejects_out, make, {}
    )


def make_grounding_pairs(
    task: str,
    shard: int,
    clips: Path,
    videos: Path,
    masks: Path,
    task_cfg: dict[str, Any],
    seed: int,
    encode: dict[str, Any],
    dataset: Path,
    out: Path,
    rejects_out: Path,
    max_words: int | None = None,
) -> pd.DataFrame:
    """Grounding pairs: the clip, and the mask video of one of its objects (a seeded draw).

    Clips without a kept object make no pair and no pair reject: the masks stage recorded why.
    """
    from senorita.masks import load_masks

    objects = pd.read_parquet(masks)
    by_clip = {cid: group.sort_values("object") for cid, group in objects.groupby("clip_id")}

    def make(clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        if clip["clip_id"] not in by_clip:
            raise NoPair("no object found (see the masks stage's rejects)", record=False)
        choices = by_clip[clip["clip_id"]]
        obj = choices.iloc[int(rng.integers(len(choices)))]
        mask = load_masks(obj["mask_path"])[int(obj["object"])]
        video = np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1)
        write_frames(
            tgt, video, clip["fps"], crf=task_cfg.get("crf", encode["crf"]), preset=encode["preset"]
        )
        link_or_copy(clip["path"], src)
        models = json.loads(obj["models"])
        maker = "model:grounding:" + "+".join(
            f"{models[f]['model']}@{models[f]['revision'] or 'local'}"
            for f in ("detector", "segmenter")
        )
        params = {
            "phrase": obj["phrase"],
            "object": int(obj["object"]),
            "box": [float(v) for v in obj["box"]],
            "score": float(obj["score"]),
            "key_frame": int(obj["key_frame"]),
            "area_mean": float(obj["area_mean"]),
            "mask_path": obj["mask_path"],
            "models": models,
        }
        shape = (int(obj["height"]), int(obj["width"]))
        return Made(shape, shape, maker, params, {"obj": obj["phrase"]})

    return make_pairs(
        task,
        shard,
        clips,
        videos,
        task_cfg,
        seed,
        dataset,
        out,
        rejects_out,
        make,
        {"encode": encode, "maker": "grounding"},
        max_words=max_words,
    )
