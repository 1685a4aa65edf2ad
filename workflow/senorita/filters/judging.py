"""The judge's scoring job (``judge_scores``, one per task, GPU): a verdict for every pair.

A chat VLM (``models.judge``, ``senorita.judge.Judge``) sees ``frames`` frame pairs sampled at
the same relative times from each pair's source and target, and the task's rubric
(``senorita.judge.rubric``), and answers three scores and a reason. Thresholds are not applied
here (``senorita.filters.thresholds``, in the manifest job), so changing one never asks again.

Cached per pair: each verdict (or the reason there is none) is appended to
``<out folder>/verdicts.jsonl`` as it comes, keyed by what decides it: the two videos' bytes, the
question, the model and the settings. A killed job loses at most the batch in flight; a rerun
(after a kill, a new shard, a threshold change upstream that regenerated some pairs) asks only
about pairs whose key is new, and loads the model only if there is one. The cache is rewritten
at the end with the keys this run used, so it does not grow with stale entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from senorita.answer_cache import AnswerCache
from senorita.atomic import write_table, write_text
from senorita.filters.scoring import decode_ahead, sample_indices
from senorita.ids import shard_name
from senorita.judge import SCORES, JudgeItem, Verdict, VerdictError, rubric
from senorita.progress import Progress
from senorita.provenance import stage_provenance
from senorita.tasks import get
from senorita.video import VideoError, read_frames, sha256_file

log = logging.getLogger(__name__)

JUDGE_COLUMNS = [
    "pair_id",
    *(f"judge_{k}" for k in SCORES),
    "judge_reason",
    "judge_error",
    "judge_model",
    "judge_frames",
    "judge_key",
]


def cache_path(out: Path) -> Path:
    """The verdict cache beside the job's table (not an output: a rerun keeps it)."""
    return out.with_name("verdicts.jsonl")


def pair_key(source_sha: str, target_sha: str, question: str, settings: dict[str, Any]) -> str:
    """What decides a verdict: the videos' bytes, the question, the model and its settings."""
    text = json.dumps([source_sha, target_sha, question, settings], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _entry(result: Verdict | VerdictError | str) -> dict[str, Any]:
    if isinstance(result, Verdict):
        return {"scores": result.scores(), "reason": result.reason, "error": None}
    return {"scores": None, "reason": None, "error": f"unreadable answer: {result}"[:300]}


def _row(pair_id: str, key: str | None, entry: dict[str, Any], settings: dict) -> dict:
    scores = entry.get("scores") or {}
    return {
        "pair_id": pair_id,
        **{f"judge_{k}": scores.get(k) for k in SCORES},
        "judge_reason": entry.get("reason"),
        "judge_error": entry.get("error"),
        "judge_model": settings["model"],
        "judge_frames": settings["frames"],
        "judge_key": key,
    }


def judge_task(
    task: str,
    pattern: str,
    shards: int,
    dataset: Path,
    params: dict[str, Any],
    models: dict[str, Any],
    out: Path,
    workers: int = 2,
    load_judge: Any = None,
) -> pd.DataFrame:
    """Judge every pair of one task's shard tables (``pattern`` has a ``{shard}`` field).

    ``params`` is the config's ``filters.judge`` (``frames``, ``seed``); ``models`` holds
    ``models.judge``. ``load_judge(spec)`` builds the judge (default ``Judge.load``: the model's
    own ``from_pretrained``); it is called once, on the first pair not in the cache. A pair whose
    videos cannot be read, or whose answers could not be read twice, gets ``judge_error`` and no
    scores: never a pass.
    """
    import torch

    from senorita.judge import Judge
    from senorita.models import ModelSpec

    spec = ModelSpec.from_config(models, "judge")
    load_judge = load_judge or Judge.load
    frames = int(params["frames"])
    settings = {
        "model": f"{spec.tag}:{spec.provenance()['dtype']}",
        "frames": frames,
        "image_size": int(spec.options.get("image_size", 448)),
        "max_new_tokens": int(spec.options.get("max_new_tokens", 128)),
    }
    spec_task = get(task)
    cache = AnswerCache(cache_path(out))
    tables = [Path(pattern.format(shard=shard_name(s))) for s in range(shards)]
    total = sum(pq.ParquetFile(t).metadata.num_rows for t in tables)
    progress = Progress(f"judge {task}", total=total, unit="pairs")
    state: dict[str, Any] = {"asked": 0}

    def load(row: dict[str, Any]) -> tuple[dict, str | None, JudgeItem | None, str | None]:
        """Decode a pair and build its question (threads, ahead of the model)."""
        question = rubric(spec_task, str(row["instruction"]))
        try:
            src_path, tgt_path = dataset / row["source_path"], dataset / row["target_path"]
            key = pair_key(sha256_file(src_path), sha256_file(tgt_path), question, settings)
            if cache.get(key) is not None:
                return row, key, None, None
            source, target = read_frames(src_path), read_frames(tgt_path)
        except (VideoError, OSError) as err:
            return row, None, None, f"unreadable video: {err}"
        if not len(source) or not len(target):
            return row, None, None, "unreadable video: a video of the pair has no frames"
        n = min(frames, len(source), len(target))
        src_idx, tgt_idx = sample_indices(len(source), n), sample_indices(len(target), n)
        item = JudgeItem(list(source[src_idx]), list(target[tgt_idx]), question)
        return row, key, item, None

    def ask(batch: list[tuple[dict, str, JudgeItem]]) -> None:
        if "judge" not in state:
            state["judge"] = load_judge(spec)
        torch.manual_seed(int(params.get("seed", 0)))  # greedy decoding; seeded all the same
        for (_, key, _), result in zip(
            batch, state["judge"]([item for _, _, item in batch]), strict=True
        ):
            cache.put(key, {"task": task, **_entry(result)})
        state["asked"] += len(batch)
        progress.step(len(batch))

    rows: list[dict[str, Any]] = []
    used: set[str] = set()
    for table in tables:
        pending: list[tuple[dict, str, JudgeItem]] = []
        order: list[tuple[dict, str | None, str | None]] = []
        for row, key, item, error in decode_ahead(
            load, pd.read_parquet(table).to_dict("records"), workers
        ):
            order.append((row, key, error))
            if item is not None:
                pending.append((row, key, item))
                if len(pending) == spec.batch_size:
                    ask(pending)
                    pending = []
            else:
                progress.skip()
        if pending:
            ask(pending)
        for row, key, error in order:
            if key is None:
                entry = {"scores": None, "reason": None, "error": error}
            else:
                entry = cache.get(key)
                used.add(key)
            rows.append(_row(row["pair_id"], key, entry, settings))
    progress.done()
    df = pd.DataFrame(rows, columns=JUDGE_COLUMNS).astype(
        {**{f"judge_{k}": "Int64" for k in SCORES}, "judge_frames": "Int64"}
    )
    prov = stage_provenance(
        "judge_scores", task=task, shards=shards, seed=params.get("seed", 0), **settings
    )
    write_table(df, out, prov)
    # Keep only this run's verdicts (atomically; the appends above already made them durable).
    kept = [json.dumps(cache.answers[k]) + "\n" for k in cache.answers if k in used]
    write_text("".join(kept), cache.path)
    unscored = int(df["judge_error"].notna().sum())
    log.info(
        "%s: %d pairs judged over %d shards (%d asked now, %d unscored)",
        task,
        len(df),
        shards,
        state["asked"],
        unscored,
    )
    return df
