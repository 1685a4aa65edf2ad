"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a resumed job) never sees a half-written file: either the old file, none, or the
complete new one. A writer killed between the two (SIGKILL, a lost node) leaves its temporary file;
the next write of the same path removes it, so a rerun leaves nothing behind. Snakemake gives each
path one writing job at a time, so no live writer's temporary file is taken.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{path.name}.", ".tmp" + path.suffix
    for stale in path.parent.glob(glob.escape(prefix) + "?" * 8 + glob.escape(suffix)):
        stale.unlink(missing_ok=True)  # left by a writer of this path that was killed
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(
    df: pd.DataFrame, path: str | os.PathLike[str], provenance: dict | None = None
) -> None:
    """Write a DataFrame as Parquet atomically.

    ``provenance`` (what made the table: stage, code version, parameters) is stored as JSON in
    the file's schema metadata under ``senorita``; ``read_provenance`` reads it back.
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    if provenance is not None:
        meta = dict(table.schema.metadata or {})
        meta[b"senorita"] = json.dumps(provenance, sort_keys=True, default=str).encode("utf-8")
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_provenance(path: str | os.PathLike[str]) -> dict | None:
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"senorita")
    return json.loads(raw) if raw else None


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Place ``src`` at ``dst`` atomically: a hard link where the filesystem allows, else a copy.

    Operator tasks reuse the clip as one side of the pair; a hard link costs no disk space.
    """
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
