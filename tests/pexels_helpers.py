"""Helpers shared by the Pexels tests: a loopback server, validated configs, a key grep."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
# A key that looks like a real one and is easy to find in any file that leaks it.
KEY = "px-TEST-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def full_config(partial: dict[str, Any]) -> dict[str, Any]:
    """``partial`` with the schema's defaults filled in (as Snakemake would)."""
    cfg = copy.deepcopy(partial)
    validate(cfg, str(SCHEMA))
    return cfg


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    raw = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and raw in p.read_bytes()]
