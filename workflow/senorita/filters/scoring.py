"""Filter scoring (the ``filter_scores`` job, one per task): every score of every pair.

See ``senorita.filters`` for the scores and what they measure. Thresholds are not applied here
(``senorita.filters.thresholds``, in the manifest job), so changing one never re-scores.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from senorita.atomic import write_table
from senorita.filters import CLIP_SCORES
from senorita.ids import shard_name
from senorita.journal import Journal
from senorita.progress import Progress
from senorita.provenance import model_tag, stage_provenance
from senorita.video import VideoError, read_frames

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["pair_id", *CLIP_SCORES, "scored_frames", "score_model", "score_error"]

# Luma at or beyond these counts as clipped. Not exactly 0 and 255: H.264's limited range and
# coding noise leave crushed blacks and blown whites a few levels inside.
CLIPPED_LOW, CLIPPED_HIGH = 3, 252


def luma(frames: np.ndarray) -> list[np.ndarray]:
    """BT.601 luma of (T, H, W, 3) uint8 RGB frames: T (H, W) uint8 images."""
    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]


def quality_scores(frames: np.ndarray, frozen_diff: float) -> dict[str, float]:
    """The technical checks of one video's frames (see ``senorita.filters``).

    OpenCV primitives throughout: they release the GIL, so the decoding threads run them in
    parallel (NumPy's equivalents made these checks the slowest step of GPU scoring).
    """
    y = luma(frames)
    # Integer Laplacians are exact in float32; meanStdDev accumulates in double.
    sharpness = np.mean([cv2.meanStdDev(cv2.Laplacian(f, cv2.CV_32F))[1][0, 0] ** 2 for f in y])
    hist = sum(cv2.calcHist([f], [0], None, [256], [0, 256]).ravel() for f in y)
    means = np.array([cv2.mean(f)[0] for f in y])
    clipped = (hist[: CLIPPED_LOW + 1].sum() + hist[CLIPPED_HIGH:].sum()) / hist.sum()
    if len(y) > 1:
        diffs = np.array([cv2.mean(cv2.absdiff(a, b))[0] for a, b in pairwise(y)])
        frozen = float(np.mean(diffs < frozen_diff))
        flicker = float(np.std(np.diff(means)))
    else:
        frozen, flicker = 1.0, 0.0  # a single frame is a still image
    return {
        "sharpness": float(sharpness),
        "mean_luma": float(means.mean()),
        "clipped_fraction": float(clipped),
        "frozen_fraction": frozen,
        "flicker": flicker,
    }


def sample_indices(count: int, wanted: int) -> np.ndarray:
    """Up to ``wanted`` distinct frame indices spread evenly, first and last included."""
    return np.unique(np.linspace(0, count - 1, min(wanted, count)).round().astype(int))


def _cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-6 or nb < 1e-6:
        return None
    return float(np.dot(a, b) / (na * nb))


def _prompt(row: dict[str, Any], column: str) -> str | None:
    value = row.get(column)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


class PairScorer:
    """Scores of one pair from its decoded frames; CLIP text embeddings cached per prompt.

    ``prepare`` (technical checks, frame sampling, CLIP preprocessing) is thread-safe and runs in
    the decoding threads; ``score`` runs the model.
    """

    def __init__(self, embedder, frames: int, frozen_diff: float):
        self.embedder = embedder
        self.frames = frames
        self.frozen_diff = frozen_diff
        self._texts: dict[str, np.ndarray] = {}

    def text(self, prompt: str) -> np.ndarray:
        if prompt not in self._texts:
            self._texts[prompt] = self.embedder.texts([prompt])[0]
        return self._texts[prompt]

    def prepare(self, source: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        # The same number of frames from each video, at the same relative times.
        n = min(self.frames, len(source), len(target))
        src_idx, tgt_idx = sample_indices(len(source), n), sample_indices(len(target), n)
        return {
            "quality": quality_scores(target, self.frozen_diff),
            "pixels": self.embedder.preprocess([*source[src_idx], *target[tgt_idx]]),
            "frames": n,
        }

    def score(
        self,
        prepared: dict[str, Any],
        source_prompt: str | None = None,
        target_prompt: str | None = None,
    ) -> dict[str, Any]:
        n = prepared["frames"]
        emb = self.embedder.embed_pixels(prepared["pixels"])
        src_emb, tgt_emb = emb[:n], emb[n:]
        scores: dict[str, Any] = dict(prepared["quality"])
        scores["clip_image"] = float(np.mean(np.sum(src_emb * tgt_emb, axis=1)))
        scores["clip_text"] = scores["clip_directional"] = None
        if target_prompt is not None:
            t_tgt = self.text(target_prompt)
            scores["clip_text"] = float(np.mean(tgt_emb @ t_tgt))
            if source_prompt is not None and source_prompt != target_prompt:
                t_change = t_tgt - self.text(source_prompt)
                if np.linalg.norm(t_change) > 1e-6:
                    # A frame that did not change is not aligned with the asked-for change: 0.
                    per_frame = [_cosine(d, t_change) or 0.0 for d in tgt_emb - src_emb]
                    scores["clip_directional"] = float(np.mean(per_frame))
        scores["scored_frames"] = int(n)
        return scores

    def __call__(
        self,
        source: np.ndarray,
        target: np.ndarray,
        source_prompt: str | None = None,
        target_prompt: str | None = None,
    ) -> dict[str, Any]:
        return self.score(self.prepare(source, target), source_prompt, target_prompt)


def decode_ahead(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``map(fn, items)`` in order, with up to ``2 × workers`` items decoded ahead in threads.

    Decoding (ffmpeg subprocesses) and CLIP's preprocessing are the slow parts of scoring, not the
    model; threads keep the model fed while holding only a few decoded videos in memory.
    """
    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque(pool.submit(fn, item) for item in islice(items, 2 * workers))
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(fn, item) for item in islice(items, 1))
            yield result


def score_pairs(
    pairs: pd.DataFrame,
    dataset: Path,
    scorer: PairScorer,
    model: str,
    workers: int = 2,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Score rows of a pair table (paths relative to ``dataset``); an unreadable pair's row
    carries the error instead of scores."""

    def load(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
        try:
            source = read_frames(dataset / row["source_path"])
            target = read_frames(dataset / row["target_path"])
        except VideoError as err:
            return row, None, str(err)
        if not len(source) or not len(target):
            return row, None, "a video of the pair has no frames"
        return row, scorer.prepare(source, target), None

    out = []
    for row, prepared, error in decode_ahead(load, pairs.to_dict("records"), workers):
        result: dict[str, Any] = {"pair_id": row["pair_id"], "score_model": model}
        if prepared is not None:
            prompts = _prompt(row, "source_prompt"), _prompt(row, "target_prompt")
            result.update(scorer.score(prepared, *prompts))
        result["score_error"] = error
        out.append({c: result.get(c) for c in SCORE_COLUMNS})
        if progress is not None:
            progress.step()
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def score_task(
    task: str,
    pattern: str,
    shards: int,
    dataset: Path,
    params: dict[str, Any],
    models: dict[str, Any],
    out: Path,
    workers: int = 2,
) -> pd.DataFrame:
    """Score every pair of one task's shard tables (``pattern`` has a ``{shard}`` field).

    Resumable per shard: a finished shard's scores go to a journal with the digest of its pair
    table and the scoring settings; a rerun after a kill reuses them only if both still match.
    """
    from senorita.models import ModelSpec  # torch: imported by the scoring job only

    spec = ModelSpec.from_config(models, "clip")
    prov = spec.provenance()
    model = f"{model_tag(prov['model'], prov['revision'])}:{prov['dtype']}"
    settings = {"frames": params["frames"], "frozen_diff": params["frozen_diff"], "model": model}
    journal = Journal(out)
    scorer: PairScorer | None = None  # the model loads on the first shard that needs work
    rows: list[dict[str, Any]] = []
    tables = [Path(pattern.format(shard=shard_name(shard))) for shard in range(shards)]
    total = sum(pq.ParquetFile(t).metadata.num_rows for t in tables)
    progress = Progress(f"filter scores {task}", total=total, unit="pairs")
    for shard, table in enumerate(tables):
        key, digest = shard_name(shard), _sha256(table)
        done = journal.done.get(key)
        if done and done["digest"] == digest and done["settings"] == settings:
            rows += done["rows"]
            progress.skip(len(done["rows"]))
            continue
        if scorer is None:
            from senorita.models.clip import ClipEmbedder

            embedder = ClipEmbedder.load(spec)
            scorer = PairScorer(embedder, params["frames"], params["frozen_diff"])
        shard_rows = score_pairs(pd.read_parquet(table), dataset, scorer, model, workers, progress)
        journal.record(key, {"digest": digest, "settings": settings, "rows": shard_rows})
        rows += shard_rows
        log.info("%s shard %s: %d pairs scored", task, key, len(shard_rows))
    progress.done()
    # Typed columns (a null score is NaN), so a task without prompts still has float text scores.
    df = pd.DataFrame(rows, columns=SCORE_COLUMNS).astype(
        {**dict.fromkeys(CLIP_SCORES, "float64"), "scored_frames": "Int64"}
    )
    write_table(df, out, stage_provenance("filter_scores", task=task, shards=shards, **settings))
    journal.finish()
    failed = int(df["score_error"].notna().sum())
    log.info("%s: %d pairs scored over %d shards (%d unreadable)", task, len(df), shards, failed)
    return df
