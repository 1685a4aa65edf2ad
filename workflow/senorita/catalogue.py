"""Stage 0: list the source's videos and assign each to a shard.

The catalogue is one table for the whole run: a row per video, its stable id and its shard. Every
later stage works on one shard at a time, so the DAG is O(shards × tasks) jobs and known when
Snakemake parses the workflow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from senorita.atomic import write_table
from senorita.ids import shard_of
from senorita.provenance import stage_provenance
from senorita.sources import make_source

log = logging.getLogger(__name__)


def build_catalogue(source_cfg: dict[str, Any], n_shards: int, out: Path) -> pd.DataFrame:
    source = make_source(source_cfg, out.parent)
    df = source.catalogue()
    dupes = df["video_id"].duplicated()
    if dupes.any():
        log.warning("dropping %d catalogue rows with duplicate video ids", int(dupes.sum()))
        df = df[~dupes]
    df.insert(1, "shard", [shard_of(v, n_shards) for v in df["video_id"]])
    write_table(df, out, stage_provenance("catalogue", source=source_cfg, shards=n_shards))
    log.info("catalogue: %d videos from source '%s' over %d shards", len(df), source.kind, n_shards)
    return df
