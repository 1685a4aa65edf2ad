"""The language model's job of an expert task, per shard, run before its expert job.

It draws each pair's plan exactly as the expert job will (``pairs.pair_draw``, then the task's
``ExpertPairs.plan``), asks the task's questions (``ExpertPairs.language_answers``) and caches the
validated answers in one JSON-lines file, which the expert job reads: no expert job holds the
language model (``models.llm``, 16 GB in half precision).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd

from senorita.atomic import write_text
from senorita.expert_tasks import expert_task
from senorita.ids import shard_name
from senorita.pairs import NoPair, PairJob, pair_draw
from senorita.progress import Progress
from senorita.tasks import LLM_EXPERT_KEYS as EXPERT_KEYS
from senorita.tasks import get

log = logging.getLogger(__name__)


def llm_answers(job: PairJob) -> int:
    """Ask the language model every question of one expert task's shard; cache the answers in
    ``job.out`` (JSON lines) for the expert job. Returns the number of answers.

    Reads the shard's masks and captions when the task does (``job.masks``, ``job.captions``)
    and the language model's config (``job.models``). Resumable: answers are appended to
    ``<out>.part`` as they come (a killed job keeps them, and Snakemake does not delete that
    file), and ``out`` is written atomically at the end. A question already answered (in
    ``.part`` or a previous ``out``) is not asked again; the model is loaded only when one is not.
    """
    from senorita.models import ModelSpec

    if missing := set(EXPERT_KEYS) - set(job.require("experts").experts):
        raise ValueError(f"llm-answers --experts lacks {sorted(missing)}")
    from senorita.models.llm import AnswerCache, ChatLLM, propose

    task, shard, out = job.task, job.shard, job.out
    # The tables its questions read: the objects and the captions (no control map, no answer).
    job.require("models").require_tables(
        tuple(t for t in get(task).reads if t in ("masks", "captions"))
    )
    expert = expert_task(job)
    part = out.with_name(out.name + ".part")
    cache = AnswerCache(part)
    if out.exists():  # a rerun by hand: what the last run answered stands
        for key, entry in AnswerCache(out).answers.items():
            if cache.get(key) is None:
                cache.put(key, {k: v for k, v in entry.items() if k != "key"})
    state: dict[str, Any] = {"asked": 0}

    def ask(clip_id, what, question, check, fallback, seed):
        key = f"{clip_id}/{what}"
        if cache.get(key) is None:
            if "llm" not in state:
                state["llm"] = ChatLLM.load(ModelSpec.from_config(job.models, "llm"))
            state["asked"] += 1
        return propose(state.get("llm"), cache, key, question, check, fallback, seed)

    drawn = []
    for clip in pd.read_parquet(job.clips).to_dict("records"):
        if (draw := pair_draw(job, clip["clip_id"])) is not None:
            drawn.append((clip, draw[1]))
    progress = Progress(f"llm {task} {shard_name(shard)}", total=len(drawn), unit="clips")
    for clip, rng in drawn:
        asked = state["asked"]
        try:
            plan = expert.plan(clip, rng)
        except NoPair:  # the expert job records why; nothing to ask
            progress.skip()
            continue
        expert.language_answers(plan, ask)
        if state["asked"] > asked:
            progress.step()
        else:
            progress.skip()
    progress.done()
    entries = [json.dumps(e, sort_keys=True) + "\n" for e in cache.answers.values()]
    write_text("".join(entries), out)
    part.unlink(missing_ok=True)
    log.info(
        "llm %s shard %d: %d answers (%d asked now)", task, shard, len(entries), state["asked"]
    )
    return len(entries)
