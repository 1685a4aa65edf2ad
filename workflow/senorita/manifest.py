"""Per task: gather the shards' pair tables into the task's manifest, filters applied.

The task's ``manifest`` job also draws the report's pictures of it (``senorita.preview``) and
exports its WebDataset shards (``senorita.export``) from the manifest it has just written: one
process per task for all three, which read the same pairs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from senorita.atomic import read_provenance, write_table
from senorita.attribution import VIDEO_FIELD_TYPES
from senorita.provenance import stage_provenance

log = logging.getLogger(__name__)


def build_manifest(
    shard_tables: list[Path],
    out: Path,
    scores: Path | None = None,
    thresholds: dict[str, Any] | None = None,
    verdicts: Path | None = None,
    gate_judge: bool = True,
) -> pd.DataFrame:
    """Concatenate shard tables (in shard order) into one manifest Parquet.

    With ``scores`` (the task's filter scores), every row also gets its scores, ``kept`` and
    ``filter_reason`` under ``thresholds`` (see ``senorita.filters.thresholds``); with
    ``verdicts`` (the judge's scores) also the judge's, applied when ``gate_judge``.
    """
    frames = [pd.read_parquet(p) for p in sorted(shard_tables)]
    non_empty = [f for f in frames if len(f)]
    df = pd.concat(non_empty, ignore_index=True) if non_empty else frames[0].iloc[0:0]
    if scores is not None:
        from senorita.filters.thresholds import apply_filters

        judged = pd.read_parquet(verdicts) if verdicts is not None else None
        df = apply_filters(df, pd.read_parquet(scores), thresholds or {}, judged, gate_judge)
    df = df.sort_values(["shard", "pair_id"], kind="stable").reset_index(drop=True)
    df = df.astype({f: t for f, t in VIDEO_FIELD_TYPES.items() if f in df.columns})
    makers = [read_provenance(p) for p in sorted(shard_tables)]
    prov = stage_provenance("manifest", shards=len(shard_tables))
    prov["made_by"] = next((m for m in makers if m), None)  # the pair stage's record (shard 0's)
    write_table(df, out, prov)
    log.info("manifest %s: %d pairs from %d shards", out, len(df), len(shard_tables))
    return df
