"""The source video's attribution: the fields every clip row and every pair row carry.

The clips stage copies them from the ingest table into each clip row; the pair jobs copy them from
the clip row into each pair row, so a pair names its source's licence and author wherever it goes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

VIDEO_FIELDS = [
    "origin",
    "licence",
    "author",
    "author_url",
    "page_url",
    "source_name",
    "pexels_id",
    "rendition",
]
# Their pandas types in a manifest: fixed, so that every task's manifest has one schema (a field
# that is missing for all of a task's rows would otherwise be typed null there) and the Hub's
# loader can read all tasks as one table.
VIDEO_FIELD_TYPES = {f: ("Int64" if f == "pexels_id" else "string") for f in VIDEO_FIELDS}


def plain(value: Any) -> Any:
    """pandas' missing values as None, numpy scalars as Python ones (journals are JSON)."""
    if isinstance(value, np.generic):
        value = value.item()
    missing = value is None or value is pd.NA or (isinstance(value, float) and value != value)
    return None if missing else value


def attribution(row: Any) -> dict[str, Any]:
    """The attribution fields of a row (a dict or a pandas row), missing ones as None."""
    return {f: plain(row.get(f)) for f in VIDEO_FIELDS}
