"""Filter thresholds (inside the task's manifest job, cheap): each pair judged against its task's
bounds, filters in the paper's order. A null score is never filtered on; a bound set to null in
the config is not applied.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from senorita.filters import FILTERS, SCORES

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
