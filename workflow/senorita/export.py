"""WebDataset export: the pairs of a task as tar shards, for streaming training loaders.

One tar per dataset shard, ``<task>-<shard>.tar``. A sample is one pair, keyed by its pair id:
``<pair_id>.source.mp4``, ``<pair_id>.target.mp4`` and ``<pair_id>.json`` (its manifest row).
Members of a sample are consecutive, as WebDataset readers require.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import Path

import pandas as pd

from senorita.atomic import atomic_path
from senorita.ids import shard_name
from senorita.journal import prune

log = logging.getLogger(__name__)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible archives: the same pairs give the same bytes
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def export_task(manifest: Path, dataset: Path, out: Path, task: str | None = None) -> list[Path]:
    """Write one tar per shard of the task's manifest into ``out``; return their paths.

    ``task`` names the tars (default: the manifest's folder, ``<dataset>/<task>/manifest.parquet``).
    """
    df = pd.read_parquet(manifest)
    task = task or manifest.parent.name
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for shard, rows in df.sort_values("pair_id").groupby("shard", sort=True):
        path = out / f"{task}-{shard_name(int(shard))}.tar"
        with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for row in rows.to_dict("records"):
                key = row["pair_id"]
                _add(tar, f"{key}.source.mp4", (dataset / row["source_path"]).read_bytes())
                _add(tar, f"{key}.target.mp4", (dataset / row["target_path"]).read_bytes())
                meta = json.dumps(row, sort_keys=True, default=str).encode("utf-8")
                _add(tar, f"{key}.json", meta)
        written.append(path)
    prune(out, {p.name for p in written})
    log.info("%s: %d pairs in %d tar shards", task, len(df), len(written))
    return written
