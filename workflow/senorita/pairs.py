"""Stage 3, per task and shard: make one (source, instruction, target) pair per clip.

For an operator task the clip is the target and the operator's output is the source. Files are
laid out as in the released Señorita-2M: ``<pair_id>_org.mp4`` (source) beside ``<pair_id>.mp4``
(target), in ``<dataset>/<task>/<shard>/``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from senorita.atomic import link_or_copy, write_table
from senorita.ids import derive_seed, stable_hash
from senorita.ingest import REJECT_COLUMNS
from senorita.instructions import draw_instruction
from senorita.journal import Journal, prune
from senorita.operators import OPERATORS
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
    clip_table = pd.read_parquet(clips)
    video_table = pd.read_parquet(videos).set_index("video_id")
    media = dataset / task / f"{shard:05d}"
    media.mkdir(parents=True, exist_ok=True)
    journal = Journal(out)
    rows, rejects = [], []
    for clip in clip_table.to_dict("records"):
        pair_seed = derive_seed(seed, task, clip["clip_id"])
        rng = np.random.default_rng(pair_seed)
        if rng.random() >= task_cfg["clip_fraction"]:
            continue
        pair_id = stable_hash("pair", task, clip["clip_id"])
        src, tgt = media / f"{pair_id}_org.mp4", media / f"{pair_id}.mp4"
        if (done := journal.get(pair_id, src, tgt)) is not None:
            rows.append(done)
            continue
        try:
            frames = read_frames(clip["path"])
            params = operator.draw(rng, task_cfg, frames.shape[1], frames.shape[2])
            source = operator(frames, params)
            write_frames(
                src,
                source,
                clip["fps"],
                crf=task_cfg.get("crf", encode["crf"]),
                preset=encode["preset"],
            )
            link_or_copy(clip["path"], tgt)
        except VideoError as err:
            rejects.append(
                {
                    "video_id": clip["video_id"],
                    "shard": shard,
                    "stage": f"pairs:{task}",
                    "path": clip["path"],
                    "reason": str(err),
                }
            )
            continue
        instruction, template_id = draw_instruction(task, rng, max_words=max_words)
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
            "source_height": int(source.shape[1]),
            "source_width": int(source.shape[2]),
            "target_height": int(frames.shape[1]),
            "target_width": int(frames.shape[2]),
            "frames": int(frames.shape[0]),
            "fps": float(clip["fps"]),
            "maker": f"operator:{operator.name}",
            "params": json.dumps(params, sort_keys=True),
            "seed": pair_seed,
            "code_version": code_version(),
            **{f: _plain(video.get(f)) for f in VIDEO_FIELDS},
        }
        journal.record(pair_id, row)
        rows.append(row)
    df = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    prov = stage_provenance(
        "pairs",
        task=task,
        shard=shard,
        params=task_cfg,
        seed=seed,
        encode=encode,
        maker=f"operator:{operator.name}",
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
    clip_table = pd.read_parquet(clips)
    video_table = pd.read_parquet(videos).set_index("video_id")
    maps = pd.read_parquet(control)
    maps = maps[maps["kind"] == kind].set_index("clip_id")
    media = dataset / task / f"{shard:05d}"
    media.mkdir(parents=True, exist_ok=True)
    journal = Journal(out)
    rows, rejects = [], []
    for clip in clip_table.to_dict("records"):
        pair_seed = derive_seed(seed, task, clip["clip_id"])
        rng = np.random.default_rng(pair_seed)
        if rng.random() >= task_cfg["clip_fraction"]:
            continue
        pair_id = stable_hash("pair", task, clip["clip_id"])
        src, tgt = media / f"{pair_id}_org.mp4", media / f"{pair_id}.mp4"
        if (done := journal.get(pair_id, src, tgt)) is not None:
            rows.append(done)
            continue
        if clip["clip_id"] not in maps.index:
            rejects.append(
                {
                    "video_id": clip["video_id"],
                    "shard": shard,
                    "stage": f"pairs:{task}",
                    "path": clip["path"],
                    "reason": f"no {kind} map for this clip (see the control stage's rejects)",
                }
            )
            continue
        cmap = maps.loc[clip["clip_id"]]
        source, target = (clip["path"], cmap["path"])
        if not map_is_target:
            source, target = target, source
        link_or_copy(source, src)
        link_or_copy(target, tgt)
        instruction, template_id = draw_instruction(task, rng)
        video = video_table.loc[clip["video_id"]]
        params = json.loads(cmap["params"])
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
            "source_height": int(cmap["height"] if not map_is_target else clip["height"]),
            "source_width": int(cmap["width"] if not map_is_target else clip["width"]),
            "target_height": int(cmap["height"] if map_is_target else clip["height"]),
            "target_width": int(cmap["width"] if map_is_target else clip["width"]),
            "frames": int(clip["frames"]),
            "fps": float(clip["fps"]),
            "maker": f"model:{kind}:{params.get('model')}@{params.get('revision') or 'local'}",
            "params": json.dumps({"kind": kind, **params}, sort_keys=True),
            "seed": pair_seed,
            "code_version": code_version(),
            **{f: _plain(video.get(f)) for f in VIDEO_FIELDS},
        }
        journal.record(pair_id, row)
        rows.append(row)
    df = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    write_table(pd.DataFrame(rejects, columns=REJECT_COLUMNS), rejects_out)
    write_table(df, out)
    journal.finish()
    keep = {Path(p).name for p in (*df["source_path"], *df["target_path"])}
    prune(media, keep)
    log.info("%s shard %d: %d pairs (%d rejects)", task, shard, len(df), len(rejects))
    return df
