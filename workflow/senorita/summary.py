"""Run-level tables for the report: pairs per task against the target mix, and rejects."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from senorita.atomic import write_text
from senorita.tasks import TASKS

STYLE = (
    "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#eee}</style>"
)


def pairs_per_task(manifests: list[Path]) -> pd.DataFrame:
    counts = {p.parent.name: len(pd.read_parquet(p, columns=["pair_id"])) for p in manifests}
    total = sum(counts.values())
    target_total = sum(t.share for t in TASKS if t.id in counts)
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
        for t in TASKS
        if t.id in counts
    ]
    return pd.DataFrame(rows)


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
