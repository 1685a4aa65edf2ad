"""Stage 3, per shard: a short caption of every clip (BLIP-2), fit to CLIP's 77-token limit.

``frames`` frames are sampled evenly from each clip and captioned in one batch; the clip's caption
is the most frequent of them (ties: the one nearest the middle of the clip). A caption longer than
CLIP's text limit (counted with the CLIP tokenizer of the registry's ``clip`` entry, start and end
tokens included) loses words from its end until it fits. A clip whose captions are all empty is a
recorded reject.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from senorita.atomic import write_table
from senorita.ingest import REJECT_COLUMNS
from senorita.journal import Journal
from senorita.models import ModelSpec
from senorita.progress import Progress
from senorita.provenance import code_version
from senorita.video import VideoError, read_frames

log = logging.getLogger(__name__)

CAPTION_COLUMNS = [
    "clip_id",
    "video_id",
    "shard",
    "caption",
    "clip_tokens",
    "truncated",
    "frame_captions",
    "frame_indices",
    "model",
    "revision",
    "params",
    "code_version",
]


def sample_indices(n_frames: int, k: int) -> list[int]:
    """``k`` frame indices spread evenly, centred in equal segments (k=1: the middle frame)."""
    k = max(1, min(k, n_frames))
    return [int((2 * i + 1) * n_frames / (2 * k)) for i in range(k)]


def choose_caption(captions: list[str]) -> str:
    """The most frequent non-empty caption; ties go to the one nearest the middle."""
    counts = Counter(c for c in captions if c)
    if not counts:
        return ""
    mid = (len(captions) - 1) / 2
    best = max(counts.values())
    tied = [i for i, c in enumerate(captions) if c and counts[c] == best]
    return captions[min(tied, key=lambda i: abs(i - mid))]


def fit_clip_tokens(caption: str, tokenizer, limit: int) -> tuple[str, int, bool]:
    """Drop words from the end until the caption fits ``limit`` CLIP tokens.

    A single word longer than the limit is cut at the token level instead.
    """

    def count(text: str) -> int:
        return len(tokenizer(text, verbose=False)["input_ids"])

    words = caption.split()
    truncated = False
    while len(words) > 1 and count(" ".join(words)) > limit:
        words = words[:-1]
        truncated = True
    text = " ".join(words)
    while text and count(text) > limit:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        text = tokenizer.decode(ids[: max(0, min(len(ids) - 1, limit - 2))]).strip()
        truncated = True
    return text, count(text), truncated


def caption_shard(
    clips: Path,
    shard: int,
    cfg: dict[str, Any],
    models: dict[str, Any],
    out: Path,
    rejects_out: Path,
) -> pd.DataFrame:
    table = pd.read_parquet(clips)
    journal = Journal(out)
    spec = ModelSpec.from_config(models, "captioner")
    clip_spec = ModelSpec.from_config(models, "clip")
    captioner = tokenizer = None  # loaded on the first clip that needs work
    rows, rejects = [], []
    progress = Progress(f"captions {shard:05d}", total=len(table), unit="clips")
    for clip in table.to_dict("records"):
        if (done := journal.get(clip["clip_id"])) is not None:
            (rows if "caption" in done else rejects).append(done)
            progress.skip()
            continue
        if captioner is None:
            from transformers import AutoTokenizer

            from senorita.models.captioner import Captioner

            captioner = Captioner.load(spec)
            revision = None if clip_spec.is_local else clip_spec.revision
            tokenizer = AutoTokenizer.from_pretrained(clip_spec.id, revision=revision)
        reject = {"video_id": clip["video_id"], "shard": shard, "stage": "captions"}
        try:
            frames = read_frames(clip["path"])
        except VideoError as err:
            entry = {**reject, "path": clip["path"], "reason": str(err)}
        else:
            indices = sample_indices(len(frames), cfg["frames"])
            frame_captions = captioner(list(frames[indices]))
            caption, n_tokens, truncated = fit_clip_tokens(
                choose_caption(frame_captions), tokenizer, cfg["max_clip_tokens"]
            )
            if not caption:
                entry = {**reject, "path": clip["path"], "reason": "empty caption on every frame"}
            else:
                prov = spec.provenance()
                entry = {
                    "clip_id": clip["clip_id"],
                    "video_id": clip["video_id"],
                    "shard": shard,
                    "caption": caption,
                    "clip_tokens": n_tokens,
                    "truncated": truncated,
                    "frame_captions": frame_captions,
                    "frame_indices": [int(i) for i in np.asarray(indices)],
                    "model": prov["model"],
                    "revision": prov["revision"],
                    "params": json.dumps({**cfg, **prov, "clip": clip_spec.id}, sort_keys=True),
                    "code_version": code_version(),
                }
        journal.record(clip["clip_id"], entry)
        (rows if "caption" in entry else rejects).append(entry)
        progress.step()
    progress.done()
    df = pd.DataFrame(rows, columns=CAPTION_COLUMNS)
    write_table(pd.DataFrame(rejects, columns=REJECT_COLUMNS), rejects_out)
    write_table(df, out)
    journal.finish()
    log.info(
        "shard %d: %d captions of %d clips (%d rejects)", shard, len(df), len(table), len(rejects)
    )
    return df
