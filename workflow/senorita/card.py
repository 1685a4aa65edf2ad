"""The dataset card (``README.md`` at the dataset root) and the run's rejects table."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from senorita.atomic import write_table, write_text
from senorita.filters import card_lines as filter_card_lines
from senorita.ingest import REJECT_COLUMNS
from senorita.provenance import code_version
from senorita.tasks import TASKS

log = logging.getLogger(__name__)


def build_card(
    manifests: list[Path],
    reject_tables: list[Path],
    catalogue: Path,
    card_out: Path,
    rejects_out: Path,
) -> str:
    counts: dict[str, int] = {}
    licences: dict[str, int] = {}
    author_set: set[str] = set()
    for path in manifests:
        df = pd.read_parquet(path, columns=["task", "licence", "author"])
        author_set.update(df["author"].dropna().unique())
        task = path.parent.name
        counts[task] = len(df)
        for lic, n in df["licence"].fillna("unknown").value_counts().items():
            licences[lic] = licences.get(lic, 0) + int(n)
    reject_frames = [t for t in (pd.read_parquet(p) for p in reject_tables) if len(t)]
    rejects = (
        pd.concat(reject_frames, ignore_index=True)
        if reject_frames
        else pd.DataFrame(columns=REJECT_COLUMNS)
    )
    write_table(rejects, rejects_out)
    authors = len(author_set)
    n_videos = len(pd.read_parquet(catalogue, columns=["video_id"]))
    total = sum(counts.values())

    lines = [
        "# Señorita-style video editing pairs",
        "",
        f"Built by senorita {code_version()} from {n_videos} source videos; "
        f"{total} pairs in {len(counts)} tasks.",
        "",
        "Each task folder holds shards of pairs (`<pair_id>_org.mp4` is the source, "
        "`<pair_id>.mp4` "
        "the target) and `manifest.parquet`, one row per pair with its instruction, paths, "
        "parameters, seed and attribution. Load with "
        '`datasets.load_dataset("parquet", data_files="<task>/manifest.parquet")`.',
        "",
        "| # | task | source → target | pairs | share here | Señorita-2M share |",
        "|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        if task.id in counts:
            share = counts[task.id] / total if total else 0.0
            lines.append(
                f"| {task.number} | {task.id} | {task.source} → {task.target} | "
                f"{counts[task.id]} | {share:.1%} | {task.share:.1%} |"
            )
    lines += ["", "## Licences and attribution", ""]
    lines += [f"- {lic}: {n} pairs" for lic, n in sorted(licences.items())] or ["- none"]
    lines += [
        "",
        f"Source videos by {authors} distinct authors. Every manifest row carries its video's "
        "origin, licence, author, author URL and page URL: keep them when you redistribute.",
        "",
        *filter_card_lines(manifests),
    ]
    lines += ["", "## Rejected inputs", ""]
    if len(rejects):
        by_reason = rejects.assign(kind=rejects["reason"].str.split(":").str[0])
        for (stage, kind), n in by_reason.groupby(["stage", "kind"]).size().items():
            lines.append(f"- {stage}: {kind}: {n}")
        lines.append("")
        lines.append("Every reject, with its full reason, is in `rejects.parquet`.")
    else:
        lines.append("None.")
    text = "\n".join(lines) + "\n"
    write_text(text, card_out)
    return text
