"""The shard runner: one loop for every per-shard stage (clips, captions, control maps, masks,
pairs).

A stage gives ``run_shard`` its items (a shard's videos or clips) and one per-item function, the
way video2dataset's subsamplers give the worker one method each. The runner owns everything else:

- **resume**: every finished item is journaled (``senorita.journal``) under ``key(item)``, its rows
  and its rejects alike. A job killed mid-shard and run again reuses what the journal lists, so no
  item is redone, rejects included; an item whose rows name a file that is gone (``files``) is
  redone.
- **rejects**: an exception of ``errors`` (``VideoError`` and ``Reject`` by default) raised by
  ``work`` becomes one row of the rejects table (``REJECT_COLUMNS``: the item's ``video_id`` and
  ``path``, the shard, ``stage`` and the error's text). ``Reject(reason, record=False)`` skips the
  item with no reject row (another stage already recorded why).
- **progress**: ``senorita.progress`` lines; items worked on count towards the rate, items resumed
  from the journal or not drawn (``work`` returned None) are skipped.
- **finish**: the rejects table, then the table (``columns``, rows in item order), both written
  atomically with ``provenance`` in their metadata (``atomic.write_table``); then the journal is
  deleted, and the files in ``media`` that no row names (through ``files``) are pruned: outputs
  of rows that no longer exist, temp files of killed jobs.

The per-item function::

    def work(item: dict) -> dict | list[dict] | Outcome | None

returns the item's table row, several rows (masks: one per object; clips: one per clip), an
``Outcome`` (rows, plus reasons for parts of the item that failed: a video with one clip that
could not be cut), or None when the item is not drawn / has nothing to do (not journaled, so a
resumed job calls ``work`` again: it must decide that cheaply and deterministically). It raises
``Reject`` (or another of ``errors``) when the item cannot be processed: the journal then records
the reject, and a resumed job does not retry it. Models load lazily inside ``work`` (the first item
that needs work), so a job whose items are all journaled loads none.

Rows must be JSON-serialisable (Python scalars, lists, None): the journal stores them, and a
resumed job's table is built from the journal's copy of the finished items.

Batching: with ``batch`` > 1, the items that need work go to ``prepare(items)`` ``batch`` at a time
before ``work`` is called on each of them; ``prepare`` runs the batched part (the masks stage's
VLM over several key frames) and keeps its per-item results (or per-item errors, which ``work``
then raises) for ``work`` to pick up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from senorita.atomic import write_table
from senorita.ids import shard_name
from senorita.ingest import REJECT_COLUMNS
from senorita.journal import Journal, prune
from senorita.progress import Progress
from senorita.video import VideoError

log = logging.getLogger(__name__)

Row = dict[str, Any]


class Reject(Exception):
    """An item the stage cannot process: a reject row (or, with ``record=False``, skipped with
    none: another stage already recorded why)."""

    def __init__(self, reason: str, record: bool = True):
        super().__init__(reason)
        self.record = record


@dataclass
class Outcome:
    """An item's rows and the reasons parts of it failed (one reject row each)."""

    rows: list[Row] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)


def model_ids(models: dict[str, Any], families: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What a shard table's provenance records about the registry entries its job loads."""
    return {
        f: {k: (models.get(f) or {}).get(k) for k in ("id", "revision", "dtype")} for f in families
    }


def _by_clip(item: Row) -> str:
    return str(item["clip_id"])


def _no_files(row: Row) -> Iterable[str | os.PathLike[str]]:
    return ()


def run_shard(
    stage: str,
    shard: int,
    items: pd.DataFrame | Sequence[Row],
    work: Callable[[Row], Row | list[Row] | Outcome | None],
    *,
    out: Path,
    rejects_out: Path,
    columns: list[str],
    provenance: dict[str, Any],
    key: Callable[[Row], str] = _by_clip,
    files: Callable[[Row], Iterable[str | os.PathLike[str]]] = _no_files,
    media: Path | None = None,
    errors: tuple[type[BaseException], ...] = (VideoError, Reject),
    batch: int = 1,
    prepare: Callable[[list[Row]], None] | None = None,
    label: str | None = None,
    unit: str = "clips",
) -> pd.DataFrame:
    """Run ``work`` over one shard's ``items`` and write its table; see the module docstring.

    ``stage`` names the stage in reject rows (``pairs:deblur``) and, unless ``label`` is given, in
    progress lines (``<stage> <shard>``). ``key`` names an item in the journal (default its
    ``clip_id``); ``files`` lists the files a row names: a journaled item is reused only if they
    all exist, and ``media`` (when given) is pruned to them once the table is written.
    """
    if isinstance(items, pd.DataFrame):
        items = items.to_dict("records")
    items = list(items)
    journal = Journal(out)
    progress = Progress(label or f"{stage} {shard_name(shard)}", total=len(items), unit=unit)

    def reject_row(item: Row, reason: str) -> Row:
        return {
            "video_id": item.get("video_id"),
            "shard": shard,
            "stage": stage,
            "path": None if item.get("path") is None else str(item["path"]),
            "reason": reason,
        }

    def resumed(item: Row) -> tuple[list[Row], list[Row]] | None:
        entry = journal.get(key(item))
        if not isinstance(entry, dict) or set(entry) != {"rows", "rejects"}:
            return None  # not done, or written by an older version of this stage: redo
        if not all(Path(f).exists() for row in entry["rows"] for f in files(row)):
            return None  # a file it made is gone: redo
        return entry["rows"], entry["rejects"]

    def run(item: Row) -> tuple[list[Row], list[Row]] | None:
        try:
            result = work(item)
        except errors as err:
            rows = []
            bad = [reject_row(item, str(err))] if getattr(err, "record", True) else []
        else:
            if result is None:
                return None
            if isinstance(result, Outcome):
                rows, bad = list(result.rows), [reject_row(item, r) for r in result.rejects]
            else:
                rows, bad = ([result] if isinstance(result, dict) else list(result)), []
        journal.record(key(item), {"rows": rows, "rejects": bad})
        return rows, bad

    done: list[tuple[list[Row], list[Row]] | None] = [None] * len(items)
    pending = []
    for i, item in enumerate(items):
        done[i] = resumed(item)
        if done[i] is None:
            pending.append(i)
    progress.skip(len(items) - len(pending))
    step = max(1, int(batch))
    for start in range(0, len(pending), step):
        chunk = pending[start : start + step]
        if prepare is not None:
            prepare([items[i] for i in chunk])
        for i in chunk:
            done[i] = run(items[i])
            if done[i] is None:
                progress.skip()  # not drawn: no work, not part of the rate
            else:
                progress.step()
    progress.done()

    rows = [row for d in done if d is not None for row in d[0]]
    rejects = [bad for d in done if d is not None for bad in d[1]]
    df = pd.DataFrame(rows, columns=columns)
    write_table(pd.DataFrame(rejects, columns=REJECT_COLUMNS), rejects_out, provenance)
    write_table(df, out, provenance)
    journal.finish()
    removed = 0
    if media is not None:
        removed = prune(media, {Path(f).name for row in rows for f in files(row)})
    log.info(
        "%s shard %d: %d rows from %d %s (%d rejects, %d stale files removed)",
        stage,
        shard,
        len(df),
        len(items),
        unit,
        len(rejects),
        removed,
    )
    return df
