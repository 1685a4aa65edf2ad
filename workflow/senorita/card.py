"""The dataset card (``README.md`` at the dataset root) and the run's rejects table."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from senorita.atomic import write_table, write_text
from senorita.filters import FILTER_NAMES, FILTERS, SCORES
from senorita.hub import front_matter
from senorita.ingest import REJECT_COLUMNS
from senorita.provenance import code_version
from senorita.tasks import all_tasks

log = logging.getLogger(__name__)


def clip_yield(
    n_videos: int, video_tables: list[Path], clip_tables: list[Path], rejects: pd.DataFrame
) -> tuple[str | None, list[str]]:
    """The card's clip-yield lines (videos accepted, clips per accepted video, rejects by reason)
    and a warning for the card's top when most source videos gave no clip, so a run that yields
    nothing from its sources says so at a glance.
    """
    accepted = [pd.read_parquet(p, columns=["video_id"]) for p in video_tables]
    n_accepted = sum(len(t) for t in accepted)
    clips = [pd.read_parquet(p, columns=["video_id", "stride", "fps"]) for p in clip_tables]
    clips = pd.concat(clips, ignore_index=True) if clips else pd.DataFrame()
    per_video = clips.groupby("video_id").size() if len(clips) else pd.Series(dtype=int)
    counts = per_video.value_counts().to_dict()
    if n_accepted > len(per_video):
        counts[0] = n_accepted - len(per_video)
    warning = (
        f"**Warning: only {len(per_video)} of {n_videos} source videos gave a clip** "
        "(see Clip yield and Rejected inputs below)."
        if 2 * len(per_video) < n_videos
        else None
    )
    mean = len(clips) / n_accepted if n_accepted else 0.0
    lines = [
        f"- Videos accepted at ingest: {n_accepted} of {n_videos}.",
        f"- Clips: {len(clips)} from {len(per_video)} videos, {mean:.2f} per accepted video"
        + (
            " ("
            + ", ".join(
                f"{n} with {k} clip{'' if k == 1 else 's'}" for k, n in sorted(counts.items())
            )
            + ")."
            if counts
            else "."
        ),
    ]
    if len(clips):
        rates = clips.groupby(["stride", "fps"]).size()
        lines.append(
            "- Clip frame rates: "
            + ", ".join(f"{n} at stride {s} ({f:.3g} fps)" for (s, f), n in rates.items())
            + "."
        )
    for stage in ("ingest", "clips"):
        part = rejects[rejects["stage"] == stage]
        kinds = part["reason"].str.split(":").str[0].value_counts()
        listed = ", ".join(f"{kind}: {n}" for kind, n in kinds.items()) or "none"
        lines.append(f"- Rejects at {stage}: {len(part)} ({listed}).")
    return warning, lines


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
    text = ", ".join(parts) or "not applied"
    if name == "judge" and parts and not thresholds.get("gate_judge", True):
        text += " (recorded, not gating)"
    return text


def filter_lines(manifests: list[Path]) -> list[str]:
    """The dataset card's filter section: kept/total and failures per filter, and thresholds."""
    lines = [
        "## Filters",
        "",
        "Three filters in the paper's order: visual quality of the target, text alignment "
        "(CLIP, where the pair has prompts), visual similarity of source and target (CLIP); "
        "then, where it is on, a vision-language judge scoring instruction following, "
        "preservation and quality from 1 to 5 (`judge_*` columns, its one-line reason in "
        "`judge_reason`; `judge_pass` says whether it passed the pair even where it does not "
        "gate). A pair that fails keeps its manifest row with `kept = false` and "
        "`filter_reason`; every score is in the manifest, so thresholds can change without "
        "regenerating pairs (only the manifests are rewritten). Thresholds are defaults drawn "
        "from peers and must be tuned on real outputs.",
        "",
        "| task | kept / pairs | " + " | ".join(f"failed {f}" for f in FILTERS) + " | unscored |",
        "|---|---|" + "---|" * (len(FILTERS) + 1),
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
        "|---|" + "---|" * len(FILTERS),
    ]
    for task, thresholds in used.items():
        lines.append(f"| {task} | " + " | ".join(_describe(thresholds, f) for f in FILTERS) + " |")
    return [*lines, ""]


def build_card(
    manifests: list[Path],
    reject_tables: list[Path],
    catalogue: Path,
    card_out: Path,
    rejects_out: Path,
    video_tables: list[Path] | None = None,
    clip_tables: list[Path] | None = None,
) -> str:
    """Write the card; with the ingest and clip tables it also reports the clip yield.

    The manifests must lie in task folders beside the card (``<dataset>/<task>/manifest.parquet``
    for ``<dataset>/README.md``): the card's front matter names them relative to its folder.
    """
    if strays := [
        str(p) for p in manifests if p.parent.parent.resolve() != card_out.parent.resolve()
    ]:
        raise ValueError(f"card: manifests outside {card_out.parent}/<task>/: {', '.join(strays)}")
    counts: dict[str, int] = {}
    kept: dict[str, int] = {}
    licences: dict[str, int] = {}
    author_set: set[str] = set()
    for path in manifests:
        df = pd.read_parquet(path, columns=["task", "licence", "author", "kept"])
        author_set.update(df["author"].dropna().unique())
        task = path.parent.name
        counts[task] = len(df)
        kept[task] = int(df["kept"].sum())
        for lic, n in df["licence"].fillna("unknown").value_counts().items():
            licences[str(lic)] = licences.get(str(lic), 0) + int(n)
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
    warning, yield_lines = (
        clip_yield(n_videos, video_tables, clip_tables, rejects)
        if video_tables is not None and clip_tables is not None
        else (None, [])
    )

    order = [t.id for t in all_tasks() if t.id in counts]
    lines = [
        front_matter({t: counts[t] for t in order}, {t: kept[t] for t in order}, licences),
        "# Señorita-style video editing pairs",
        "",
        f"Built by senorita {code_version()} from {n_videos} source videos; "
        f"{total} pairs in {len(counts)} tasks.",
        "",
        *([warning, ""] if warning else []),
        "Each task folder holds shards of pairs (`<pair_id>_org.mp4` is the source, "
        "`<pair_id>.mp4` the target) and `manifest.parquet`, one row per pair with its "
        "instruction, paths (relative to this folder), parameters, seed, filter scores and "
        "attribution.",
        "",
        "## Loading",
        "",
        "This folder is a Hugging Face dataset repository. "
        '`datasets.load_dataset("<this folder>")` gives the kept pairs of every task (config '
        '`all`); `load_dataset("<this folder>", "<task>")` one task\'s kept pairs (a task '
        "with none has no config of its own); config `unfiltered` every pair with its scores and "
        "`filter_reason`. Rows name their videos; "
        "`senorita.data.PairDataset(<this folder>)` decodes them into frames for a training "
        "loop (tasks, frame count and stride, resize, a mix by share, seeded shuffling).",
        "",
        "| # | task | source → target | pairs | share here | Señorita-2M share |",
        "|---|---|---|---|---|---|",
    ]
    for task in all_tasks():  # registry order; a task registered at run time too
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
        *filter_lines(manifests),
    ]
    if yield_lines:
        lines += ["", "## Clip yield", "", *yield_lines]
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
