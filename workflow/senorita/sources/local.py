"""A folder of the user's own videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from senorita.ids import stable_hash
from senorita.sources import CATALOGUE_COLUMNS


class LocalSource:
    """Every file under ``path`` matching the configured patterns is a candidate video.

    Files that turn out not to be usable videos are rejected (with a reason) at ingest, not
    silently skipped here, so the rejects table accounts for every file. A video's id is a hash of
    its path relative to the folder: stable across reruns and machines.
    """

    kind = "local"

    def __init__(self, cfg: dict[str, Any]):
        self.root = Path(cfg["path"]).expanduser()
        self.patterns = cfg["patterns"]
        self.licence = cfg.get("licence")

    def catalogue(self) -> pd.DataFrame:
        if not self.root.is_dir():
            raise FileNotFoundError(f"config source.local.path: no folder at {self.root}")
        files = sorted(
            {
                p
                for pattern in self.patterns
                for p in self.root.glob(pattern)
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
            }
        )
        rows = []
        for path in files:
            rel = path.relative_to(self.root).as_posix()
            rows.append(
                {
                    "video_id": f"local-{stable_hash(rel)}",
                    "path": str(path.resolve()),
                    "origin": "local",
                    "licence": self.licence,
                    "author": None,
                    "author_url": None,
                    "page_url": None,
                    "source_name": rel,
                }
            )
        return pd.DataFrame(rows, columns=[*CATALOGUE_COLUMNS, "source_name"])

    def materialise(self, row: dict[str, Any]) -> Path:
        return Path(row["path"])
