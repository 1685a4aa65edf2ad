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

from senorita.models import ModelSpec
from senorita.provenance import code_version, stage_provenance
from senorita.shards import Reject, model_ids, run_shard
from senorita.video import read_frames

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
    spec = ModelSpec.from_config(models, "captioner")
    clip_spec = ModelSpec.from_config(models, "clip")
    loaded: dict[str, Any] = {}  # the captioner and tokenizer, on the first clip that needs work

    def caption(clip: dict[str, Any]) -> dict[str, Any]:
        if not loaded:
            from transformers import AutoTokenizer

            from senorita.models.captioner import Captioner

            loaded["captioner"] = Captioner.load(spec)
            revision = None if clip_spec.is_local else clip_spec.revision
            loaded["tokenizer"] = AutoTokenizer.from_pretrained(clip_spec.id, revision=revision)
        frames = read_frames(clip["path"])
        indices = sample_indices(len(frames), cfg["frames"])
        frame_captions = loaded["captioner"](list(frames[indices]))
        text, n_tokens, truncated = fit_clip_tokens(
            choose_caption(frame_captions), loaded["tokenizer"], cfg["max_clip_tokens"]
        )
        if not text:
            raise Reject("empty caption on every frame")
        prov = spec.provenance()
        return {
            "clip_id": clip["clip_id"],
            "video_id": clip["video_id"],
            "shard": shard,
            "caption": text,
            "clip_tokens": n_tokens,
            "truncated": truncated,
            "frame_captions": frame_captions,
            "frame_indices": [int(i) for i in np.asarray(indices)],
            "model": prov["model"],
            "revision": prov["revision"],
            "params": json.dumps({**cfg, **prov, "clip": clip_spec.id}, sort_keys=True),
            "code_version": code_version(),
        }

    return run_shard(
        "captions",
        shard,
        pd.read_parquet(clips),
        caption,
        out=out,
        rejects_out=rejects_out,
        columns=CAPTION_COLUMNS,
        provenance=stage_provenance(
            "captions", shard=shard, params=cfg, models=model_ids(models, ("captioner", "clip"))
        ),
    )
