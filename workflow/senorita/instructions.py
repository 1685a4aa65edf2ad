"""Instructions from the task registry's templates, chosen by a seeded draw."""

from __future__ import annotations

import numpy as np

from senorita.tasks import TASKS_BY_ID


def draw_instruction(task_id: str, rng: np.random.Generator, **slots: str) -> tuple[str, str]:
    """An instruction for one pair and the id of its template (``<task>/<index>``)."""
    templates = TASKS_BY_ID[task_id].templates
    index = int(rng.integers(len(templates)))
    return templates[index].format(**slots), f"{task_id}/{index}"
