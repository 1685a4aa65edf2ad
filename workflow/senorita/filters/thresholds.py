"""Filter thresholds (inside the task's manifest job, cheap): each pair judged against its task's
bounds, filters in the paper's order, then the VLM judge. A null CLIP-filter score is never
filtered on; a bound set to null in the config is not applied. The judge differs: a pair it could
not score fails a gating judge with bounds (an unreadable answer is never a pass).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from senorita.filters import FILTERS, JUDGE_SCORES, SCORES

PROMPT_COLUMNS = ["source_prompt", "target_prompt"]


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


def failure(
    scores: dict[str, Any], bounds: list[tuple[str, str, str, float]], filters=FILTERS
) -> str | None:
    """The reason a pair fails (its first failing filter, every failing check), or None."""
    for name in filters:
        failed = [
            f"{score} {scores[score]:.4g} {'<' if side == 'min' else '>'} {bound:g}"
            for filt, score, side, bound in bounds
            if filt == name and _fails(scores.get(score), side, bound)
        ]
        if failed:
            return f"{name}: " + "; ".join(failed)
    return None


JUDGE_COLUMNS = [*JUDGE_SCORES, "judge_reason", "judge_error", "judge_model"]


def judge_verdict(row: dict[str, Any] | None, bounds: list) -> tuple[bool | None, str | None]:
    """(pass, reason) of the judge's verdict under its bounds: pass is None when unscored.

    The reason names the failing scores and the judge's own one-line reason.
    """
    if row is None:
        return None, "judge: unscored: no verdict for this pair"
    if isinstance(row.get("judge_error"), str):
        return None, f"judge: unscored: {row['judge_error']}"
    reason = failure(row, [b for b in bounds if b[0] == "judge"], ("judge",))
    if reason is None:
        return True, None
    said = row.get("judge_reason")
    return False, reason + (f" ({said})" if isinstance(said, str) and said else "")


def apply_filters(
    pairs: pd.DataFrame,
    scores: pd.DataFrame,
    thresholds: dict[str, Any],
    verdicts: pd.DataFrame | None = None,
    gate_judge: bool = True,
) -> pd.DataFrame:
    """The pair table with its scores, ``kept``, ``filter_reason`` and ``filter_thresholds``.

    A pair with no scores (its videos could not be read when scoring) is not kept. With the
    judge's ``verdicts``, every row also gets the judge's scores, reason and ``judge_pass``
    (whether its verdict meets the ``min_judge_*``/``max_judge_*`` bounds; null when unscored
    or when no judge bound is set); with ``gate_judge`` a pair that does not pass is not kept,
    after the CLIP filters. Without verdicts (the judge is off) the judge columns are null and
    its bounds are not applied.
    """
    bounds = parse_bounds(thresholds)
    judge_bounds = [b for b in bounds if b[0] == "judge"]
    table = pairs.copy()
    for column in PROMPT_COLUMNS:  # every manifest can carry prompts; null where a task has none
        if column not in table:
            table[column] = pd.Series([None] * len(table), index=table.index, dtype="string")
    by_pair = {r["pair_id"]: r for r in scores.to_dict("records")}
    by_verdict = {} if verdicts is None else {r["pair_id"]: r for r in verdicts.to_dict("records")}
    kept, reasons, passes = [], [], []
    for pair_id in table["pair_id"]:
        if (row := by_pair.get(pair_id)) is None:
            reason = "unscored: no scores for this pair"
        elif isinstance(row["score_error"], str):
            reason = f"unscored: {row['score_error']}"
        else:
            reason = failure(row, bounds, FILTERS[:-1])
        passed, judged = None, None
        if verdicts is not None and judge_bounds:
            passed, judged = judge_verdict(by_verdict.get(pair_id), judge_bounds)
        if reason is None and gate_judge:
            reason = judged
        kept.append(reason is None)
        reasons.append(reason)
        passes.append(passed)
    merged = table.merge(
        scores.drop(columns=["score_error"]), on="pair_id", how="left", validate="one_to_one"
    )
    if verdicts is not None:
        merged = merged.merge(
            verdicts[["pair_id", *JUDGE_COLUMNS]], on="pair_id", how="left", validate="one_to_one"
        )
    else:
        for column in JUDGE_COLUMNS:
            merged[column] = None
    merged = merged.astype(
        {
            **dict.fromkeys(JUDGE_SCORES, "Int64"),
            **dict.fromkeys(JUDGE_COLUMNS[len(JUDGE_SCORES) :], "string"),
        }
    )
    merged["judge_pass"] = pd.Series(passes, dtype="boolean")
    merged["kept"] = pd.Series(kept, dtype=bool)
    merged["filter_reason"] = pd.Series(reasons, dtype="string")
    merged["filter_thresholds"] = json.dumps(
        {**thresholds, "gate_judge": gate_judge}, sort_keys=True
    )
    return merged
