"""Pairs made by reversing another task's pairs (object addition: the removal pairs reversed).

The same files (hard links), no model run, the task's own instructions. The task it reverses is
the registry's ``reverses``; its shard pair table is the job's ``forward``. This module imports
no model code: the job runs on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from senorita.atomic import link_or_copy
from senorita.pairs import Made, NoPair, PairJob
from senorita.tasks import get


class ReversedPairs:
    """A task's pairs as another task's pairs reversed: the same files, new instructions."""

    def __init__(self, job: PairJob):
        self.dataset = job.require("dataset").dataset
        self.forward = get(job.task).reverses
        table = pd.read_parquet(job.require("forward").forward)
        self.rows = {r["clip_id"]: r for r in table.to_dict("records")}
        self.provenance = {"reversed_from": self.forward}

    def pair(self, clip: dict[str, Any], rng: np.random.Generator, src: Path, tgt: Path) -> Made:
        if clip["clip_id"] not in self.rows:
            raise NoPair(f"no {self.forward} pair for this clip", record=False)
        row = self.rows[clip["clip_id"]]
        link_or_copy(self.dataset / row["target_path"], src)
        link_or_copy(self.dataset / row["source_path"], tgt)
        params = {**json.loads(row["params"]), "reversed_from": row["pair_id"]}
        return Made(
            (row["target_height"], row["target_width"]),
            (row["source_height"], row["source_width"]),
            f"reversed:{row['maker']}",
            params,
            {"obj": params["phrase"]},
            frames=int(row["frames"]),
        )
