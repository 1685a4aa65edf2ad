"""Resuming a killed shard job where it stopped.

A shard job appends one JSON line per finished item to a journal beside its output table and
deletes the journal once the table is written. A job that finds a journal was killed before it
finished: it reuses the items the journal lists (whose files still exist) and does the rest. A job
that finds none starts afresh, so ``--forcerun`` regenerates everything as it should.

The shard stages use it through ``senorita.shards.run_shard``, which journals each item's rows and
rejects as ``{"rows": [...], "rejects": [...]}``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, table: Path):
        self.path = table.with_name(table.name + ".journal.jsonl")
        self.done: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # the line being written when the job died
                    continue
                self.done[entry["key"]] = entry["value"]
            log.info("resuming from %s: %d items already done", self.path, len(self.done))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in finish)
        if self._fh.tell() and not self.path.read_bytes().endswith(b"\n"):
            self._fh.write("\n")  # end the torn line so the next entry starts clean

    def get(self, key: str, *files: str | os.PathLike[str]) -> dict[str, Any] | None:
        """The recorded value of a finished item, if all its files are still there."""
        value = self.done.get(key)
        if value is not None and all(Path(f).exists() for f in files):
            return value
        return None

    def record(self, key: str, value: dict[str, Any]) -> None:
        self._fh.write(json.dumps({"key": key, "value": value}, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def finish(self) -> None:
        """Call after the shard's table is written."""
        self._fh.close()
        self.path.unlink(missing_ok=True)


def prune(folder: Path, keep: set[str]) -> int:
    """Delete files in ``folder`` not named in ``keep`` (stale outputs, temp files of dead jobs)."""
    removed = 0
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.name not in keep:
                path.unlink()
                removed += 1
    return removed
