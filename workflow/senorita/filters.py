"""Stage 8: the paper's three filters, in its order: visual quality, text alignment, similarity.

Two steps, so thresholds can change without recomputing anything expensive:

1. **Scoring** (``score_task``, one GPU job per task): every pair gets every score that applies
   to it, written to ``results/filters/<task>/scores.parquet``. Resumable per shard.
2. **Thresholding** (``apply_filters``, inside the manifest job, cheap): each pair is judged
   against its task's bounds, filters in order; a pair that fails keeps its row with
   ``kept = false`` and ``filter_reason`` naming the first failing filter, its scores and bounds.

Scores (``SCORES`` maps each to its filter):

- quality of the target, technical checks on every decoded frame (cheap next to decoding):
  ``sharpness`` (variance of the Laplacian of the luma, averaged over frames), ``mean_luma``
  (0..255), ``clipped_fraction`` (pixels crushed to black or blown to white), ``frozen_fraction``
  (consecutive frames that hardly differ) and ``flicker`` (temporal std of the frame-to-frame
  change of mean luma: a steady fade or pan scores 0, an oscillating exposure does not). No
  learned aesthetic score: the usual one (LAION's aesthetic predictor) is a separate MLP head
  downloaded from outside the hub's model families, and it judges photos, not the maps some tasks
  produce (see the README).
- text alignment, with CLIP on ``filters.frames`` frames sampled evenly from each video:
  ``clip_text`` (mean cosine between the target frames and ``target_prompt``) and
  ``clip_directional`` (mean cosine between each frame's image-embedding change, source to
  target, and the text-embedding change, ``source_prompt`` to ``target_prompt``; InstructPix2Pix's
  directional similarity). Null where the pair has no prompts (the operator tasks have none).
- similarity: ``clip_image``, mean cosine between corresponding source and target frames.

A null score is never filtered on; a bound set to null in the config is not applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
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
from senorita.journal import Journal
from senorita.progress import Progress
from senorita.video import VideoError, read_frames

log = logging.getLogger(__name__)

FILTERS = ("quality", "text", "similarity")
FILTER_NAMES = {"quality": "visual quality", "text": "text alignment", "similarity": "similarity"}

# Each score and the filter it belongs to, in the order reasons list them.
SCORES: dict[str, str] = {
    "sharpness": "quality",
    "mean_luma": "quality",
    "clipped_fraction": "quality",
    "frozen_fraction": "quality",
    "flicker": "quality",
    "clip_text": "text",
    "clip_directional": "text",
    "clip_image": "similarity",
}
SCORE_COLUMNS = ["pair_id", *SCORES, "scored_frames", "score_model", "score_error"]
PROMPT_COLUMNS = ["source_prompt", "target_prompt"]

# Luma at or beyond these counts as clipped. Not exactly 0 and 255: H.264's limited range and
# coding noise leave crushed blacks and blown whites a few levels inside.
CLIPPED_LOW, CLIPPED_HIGH = 3, 252


def luma(frames: np.ndarray) -> list[np.ndarray]:
    """BT.601 luma of (T, H, W, 3) uint8 RGB frames: T (H, W) uint8 images."""
    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]


def quality_scores(frames: np.ndarray, frozen_diff: float) -> dict[str, float]:
    """The technical checks of one video's frames (see the module docstring).

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


def _ahead(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
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
    for row, prepared, error in _ahead(load, pairs.to_dict("records"), workers):
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
    model = f"{prov['model']}@{prov['revision'] or 'local'}:{prov['dtype']}"
    settings = {"frames": params["frames"], "frozen_diff": params["frozen_diff"], "model": model}
    journal = Journal(out)
    scorer: PairScorer | None = None  # the model loads on the first shard that needs work
    rows: list[dict[str, Any]] = []
    tables = [Path(pattern.format(shard=f"{shard:05d}")) for shard in range(shards)]
    total = sum(pq.ParquetFile(t).metadata.num_rows for t in tables)
    progress = Progress(f"filter scores {task}", total=total, unit="pairs")
    for shard, table in enumerate(tables):
        key, digest = f"{shard:05d}", _sha256(table)
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
        {**dict.fromkeys(SCORES, "float64"), "scored_frames": "Int64"}
    )
    write_table(df, out)
    journal.finish()
    failed = int(df["score_error"].notna().sum())
    log.info("%s: %d pairs scored over %d shards (%d unreadable)", task, len(df), shards, failed)
    return df


def parse_bounds(thresholds: dict[str, Any]) -> list[tuple[str, str, str, float]]:
    """(filter, score, "min"|"max", value) for every bound that is set, in filter order."""
    bounds = []
    for key, value in thresholds.items():
        side, _, score = key.partition("_")
        if side not in ("min", "max") or score not in SCORES:
            raise ValueError(f"unknown filter threshold {key!r}: expected min_/max_<score>")
        if value is not None:
            bounds.append((SCORES[score], score, side, float(value)))
    order = {s: i for i, s in enumerate(SCORES)}
    return sorted(bounds, key=lambda b: (FILTERS.index(b[0]), order[b[1]], b[2] == "max"))


def _fails(score: float | None, side: str, bound: float) -> bool:
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return False
    return score < bound if side == "min" else score > bound


def judge(scores: dict[str, Any], bounds: list[tuple[str, str, str, float]]) -> str | None:
    """The reason a pair fails (its first failing filter, every failing check), or None."""
    for name in FILTERS:
        failed = [
            f"{score} {scores[score]:.4g} {'<' if side == 'min' else '>'} {bound:g}"
            for filt, score, side, bound in bounds
            if filt == name and _fails(scores.get(score), side, bound)
        ]
        if failed:
            return f"{name}: " + "; ".join(failed)
    return None


def apply_filters(
    pairs: pd.DataFrame, scores: pd.DataFrame, thresholds: dict[str, Any]
) -> pd.DataFrame:
    """The pair table with its scores, ``kept``, ``filter_reason`` and ``filter_thresholds``.

    A pair with no scores (its videos could not be read when scoring) is not kept.
    """
    bounds = parse_bounds(thresholds)
    table = pairs.copy()
    for column in PROMPT_COLUMNS:  # every manifest can carry prompts; null where a task has none
        if column not in table:
            table[column] = pd.Series([None] * len(table), index=table.index, dtype="string")
    by_pair = {r["pair_id"]: r for r in scores.to_dict("records")}
    kept, reasons = [], []
    for pair_id in table["pair_id"]:
        if (row := by_pair.get(pair_id)) is None:
            reason = "unscored: no scores for this pair"
        elif isinstance(row["score_error"], str):
            reason = f"unscored: {row['score_error']}"
        else:
            reason = judge(row, bounds)
        kept.append(reason is None)
        reasons.append(reason)
    merged = table.merge(
        scores.drop(columns=["score_error"]), on="pair_id", how="left", validate="one_to_one"
    )
    merged["kept"] = pd.Series(kept, dtype=bool)
    merged["filter_reason"] = pd.Series(reasons, dtype="string")
    merged["filter_thresholds"] = json.dumps(thresholds, sort_keys=True)
    return merged


def _describe(thresholds: dict[str, Any], name: str) -> str:
    parts = []
    for score, filt in SCORES.items():
        lo, hi = thresholds.get(f"min_{score}"), thresholds.get(f"max_{score}")
        if filt != name or (lo is None and hi is None):
            continue
        if lo is not None and hi is not None:
            parts.append(f"{lo:g} ≤ {score} ≤ {hi:g}")
        else:
            parts.append(f"{score} ≥ {lo:g}" if lo is not None else f"{score} ≤ {hi:g}")
    return ", ".join(parts) or "not applied"


def pass_rates(manifests: list[Path]) -> pd.DataFrame:
    """Per task: pairs, kept, and each filter's pass rate among the pairs that reached it.

    Filters run in order, so a pair failing quality never meets the text filter; unscored pairs
    (unreadable videos) meet none. For the report's pass-rate table.
    """
    rows = []
    for path in manifests:
        df = pd.read_parquet(path, columns=["kept", "filter_reason"])
        first = df["filter_reason"].dropna().str.split(":").str[0].value_counts()
        row: dict[str, Any] = {"task": path.parent.name, "pairs": len(df)}
        reached = len(df) - int(first.get("unscored", 0))
        for name in FILTERS:
            failed = int(first.get(name, 0))
            row[name] = (reached - failed) / reached if reached else None
            reached -= failed
        row["unscored"] = int(first.get("unscored", 0))
        row["kept"] = int(df["kept"].sum())
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", "pairs", *FILTERS, "unscored", "kept"])


def card_lines(manifests: list[Path]) -> list[str]:
    """The dataset card's filter section: kept/total and failures per filter, and thresholds."""
    lines = [
        "## Filters",
        "",
        "Three filters in the paper's order: visual quality of the target, text alignment "
        "(CLIP, where the pair has prompts), visual similarity of source and target (CLIP). "
        "A pair that fails keeps its manifest row with `kept = false` and `filter_reason`; "
        "every score is in the manifest, so thresholds can change without regenerating pairs "
        "(only the manifests are rewritten). Thresholds are defaults drawn from peers and must "
        "be tuned on real outputs.",
        "",
        "| task | kept / pairs | failed quality | failed text | failed similarity | unscored |",
        "|---|---|---|---|---|---|",
    ]
    used = {}
    for path in manifests:
        df = pd.read_parquet(path, columns=["kept", "filter_reason", "filter_thresholds"])
        task = path.parent.name
        first = df["filter_reason"].dropna().str.split(":").str[0]
        counts = first.value_counts()
        lines.append(
            f"| {task} | {int(df['kept'].sum())} / {len(df)} | "
            + " | ".join(str(int(counts.get(k, 0))) for k in (*FILTERS, "unscored"))
            + " |"
        )
        if len(df):
            used[task] = json.loads(df["filter_thresholds"].iloc[0])
    lines += ["", "Thresholds used (a score outside its bounds fails the filter):", ""]
    lines += [
        "| task | " + " | ".join(FILTER_NAMES[f] for f in FILTERS) + " |",
        "|---|---|---|---|",
    ]
    for task, thresholds in used.items():
        lines.append(f"| {task} | " + " | ".join(_describe(thresholds, f) for f in FILTERS) + " |")
    return [*lines, ""]
