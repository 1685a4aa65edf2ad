"""Run-level tables for the report: pairs per task against the target mix, the filters' pass
rates, rejects, and the VLM judge's scores and its agreement with the CLIP filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from senorita.atomic import write_text
from senorita.filters import FILTERS, JUDGE_SCORES
from senorita.tasks import all_tasks

STYLE = (
    "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#eee}</style>"
)


def pairs_per_task(manifests: list[Path]) -> pd.DataFrame:
    counts = {p.parent.name: len(pd.read_parquet(p, columns=["pair_id"])) for p in manifests}
    total = sum(counts.values())
    tasks = all_tasks()  # registry order; a task registered at run time too
    target_total = sum(t.share for t in tasks if t.id in counts)
    rows = [
        {
            "#": t.number,
            "task": t.id,
            "source → target": f"{t.source} → {t.target}",
            "pairs": counts[t.id],
            "share here": counts[t.id] / total if total else 0.0,
            "Señorita-2M share": t.share,
            "target share among built tasks": t.share / target_total if target_total else 0.0,
        }
        for t in tasks
        if t.id in counts
    ]
    return pd.DataFrame(rows)


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


def judge_distribution(manifests: list[Path]) -> pd.DataFrame:
    """Per task and judge score: how many pairs got each score 1-5, how many none, the mean."""
    rows = []
    for path in manifests:
        df = pd.read_parquet(path, columns=[*JUDGE_SCORES, "judge_error"])
        for score in JUDGE_SCORES:
            values = df[score].dropna().astype(int)
            counts = values.value_counts()
            rows.append(
                {
                    "task": path.parent.name,
                    "score": score.removeprefix("judge_"),
                    **{str(k): int(counts.get(k, 0)) for k in range(1, 6)},
                    "unscored": int(len(df) - len(values)),
                    "mean": round(float(values.mean()), 2) if len(values) else None,
                }
            )
    return pd.DataFrame(
        rows, columns=["task", "score", "1", "2", "3", "4", "5", "unscored", "mean"]
    )


CLIP_SIDE = ("CLIP filters pass", "CLIP filters fail")
JUDGE_SIDE = ("judge passes", "judge fails", "no verdict")


def judge_agreement(manifests: list[Path]) -> pd.DataFrame:
    """How the judge and the CLIP filters agree: pairs per (task, CLIP verdict, judge verdict).

    The CLIP filters pass a pair whose ``filter_reason`` is empty or the judge's own; the judge's
    verdict is ``judge_pass`` (its bounds), recorded whether or not it gates. "no verdict": the
    judge could not score the pair, or the task has no judge bound. Rows: each task, then all.
    """
    counts = []
    for path in manifests:
        df = pd.read_parquet(path, columns=["filter_reason", "judge_pass"])
        reason = df["filter_reason"].fillna("")
        clip_pass = (reason == "") | reason.str.startswith("judge:")
        judge = (
            df["judge_pass"].map({True: JUDGE_SIDE[0], False: JUDGE_SIDE[1]}).fillna(JUDGE_SIDE[2])
        )
        for side, mask in zip(CLIP_SIDE, (clip_pass, ~clip_pass), strict=True):
            seen = judge[mask].value_counts()
            counts.append({"task": path.parent.name, "CLIP filters": side, **seen.to_dict()})
    table = pd.DataFrame(counts, columns=["task", "CLIP filters", *JUDGE_SIDE]).fillna(0)
    total = table.groupby("CLIP filters", sort=False)[list(JUDGE_SIDE)].sum().reset_index()
    table = pd.concat([table, total.assign(task="all tasks")], ignore_index=True)
    return table.astype({k: int for k in JUDGE_SIDE})


def write_judge_html(manifests: list[Path], out: Path) -> None:
    """The report's judge page: score distribution per task, then agreement with CLIP."""
    parts = [
        "<h2>The VLM judge's scores per task</h2>",
        judge_distribution(manifests).to_html(index=False, na_rep="", border=0),
        "<h2>The judge and the CLIP filters</h2>",
        "<p>Pairs per verdict: the CLIP filters' (quality, text, similarity) against the "
        "judge's (its bounds, whether or not it gates).</p>",
        judge_agreement(manifests).to_html(index=False, border=0),
    ]
    write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>VLM judge</title>"
        f"{STYLE}</head><body>{''.join(parts)}</body></html>\n",
        out,
    )


def rejects_by_reason(rejects: Path) -> pd.DataFrame:
    df = pd.read_parquet(rejects)
    if df.empty:
        return pd.DataFrame(columns=["stage", "reason", "videos"])
    kind = df["reason"].str.split(":").str[0]
    return (
        df.assign(reason=kind)
        .groupby(["stage", "reason"])
        .size()
        .rename("videos")
        .reset_index()
        .sort_values(["stage", "videos"], ascending=[True, False])
    )


def write_html(df: pd.DataFrame, title: str, out: Path) -> None:
    table = df.to_html(index=False, float_format=lambda v: f"{v:.1%}", na_rep="", border=0)
    write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{STYLE}</head>"
        f"<body><h2>{title}</h2>{table}</body></html>\n",
        out,
    )


def write_summary(
    manifests: list[Path],
    rejects: Path,
    pairs_out: Path,
    filters_out: Path,
    rejects_out: Path,
    judge_out: Path | None = None,
) -> None:
    """The report's tables: pairs per task, filter pass rates, rejects by reason, and with
    ``judge_out`` the judge's page."""
    write_html(pairs_per_task(manifests), "Pairs per task", pairs_out)
    write_html(pass_rates(manifests), "Filter pass rates per task", filters_out)
    write_html(rejects_by_reason(rejects), "Rejected inputs", rejects_out)
    if judge_out is not None:
        write_judge_html(manifests, judge_out)
