"""Run-level tables for the report: pairs per task against the target mix, the filters' pass
rates, and rejects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from senorita.atomic import write_text
from senorita.filters import FILTERS
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
    manifests: list[Path], rejects: Path, pairs_out: Path, filters_out: Path, rejects_out: Path
) -> None:
    """The report's three tables: pairs per task, filter pass rates, rejects by reason."""
    write_html(pairs_per_task(manifests), "Pairs per task", pairs_out)
    write_html(pass_rates(manifests), "Filter pass rates per task", filters_out)
    write_html(rejects_by_reason(rejects), "Rejected inputs", rejects_out)
