"""Video sources: where the raw videos come from.

A source does two things. ``catalogue`` lists its videos as rows (a stable ``video_id`` plus
origin, licence and attribution fields) without touching the videos' bytes, so it is cheap enough
to run once for the whole dataset. ``materialise`` makes one catalogued video available as a local
file; it runs inside the per-shard ingest job, so slow work (downloads) is spread over shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pandas as pd

# Columns every catalogue has; sources may add more (they travel into the manifests).
CATALOGUE_COLUMNS = [
    "video_id",
    "path",
    "origin",
    "licence",
    "author",
    "author_url",
    "page_url",
]


class Source(Protocol):
    kind: str

    def catalogue(self) -> pd.DataFrame:
        """One row per video, with at least CATALOGUE_COLUMNS."""
        ...

    def materialise(self, row: dict[str, Any]) -> Path:
        """A local file holding the video of a catalogue row; raise OSError if it can't."""
        ...

    # Optional: ``prefetch(rows) -> dict[video_id, Path | str]``. Ingest calls it once per shard
    # before probing, so a remote source can fetch the shard's files concurrently; a str value is
    # the reason a video could not be fetched (it becomes the reject reason), a ``Pending`` one
    # a transient failure (neither accepted nor rejected: the next run tries again). Rows it
    # leaves out go through ``materialise``. Local sources don't need it.


class Pending(str):
    """Why a video could not be fetched *now* (the host or network failed): not a verdict about
    the video, so it is neither accepted nor rejected, and the next run tries again."""


def make_source(cfg: dict[str, Any], workdir: Path) -> Source:
    """The source named by the config's ``source.kind``."""
    kind = cfg["kind"]
    if kind == "demo":
        from senorita.sources.demo import DemoSource

        return DemoSource(cfg["demo"], workdir / "demo")
    if kind == "local":
        from senorita.sources.local import LocalSource

        return LocalSource(cfg["local"])
    if kind == "pexels":
        from senorita.sources.pexels import PexelsSource

        return PexelsSource(cfg["pexels"], workdir)
    raise ValueError(f"config source.kind: unknown source '{kind}'")
