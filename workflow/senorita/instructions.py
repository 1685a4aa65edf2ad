"""Instructions from the task registry's templates, chosen by a seeded draw."""

from __future__ import annotations

import numpy as np

from senorita.tasks import TASKS_BY_ID


class InstructionError(ValueError):
    """A filled template the dataset must not carry (empty, or over the word limit)."""


def draw_instruction(
    task_id: str, rng: np.random.Generator, max_words: int | None = None, **slots: str
) -> tuple[str, str]:
    """An instruction for one pair and the id of its template (``<task>/<index>``).

    Raises ValueError when the filled template is empty or longer than ``max_words``: an
    instruction the dataset must not carry (slots filled by a model can run long).
    """
    templates = TASKS_BY_ID[task_id].templates
    index = int(rng.integers(len(templates)))
    text = " ".join(templates[index].format(**slots).split())
    words = len(text.split())
    if words == 0 or (max_words is not None and words > max_words):
        raise InstructionError(
            f"instruction for {task_id} has {words} words (limit {max_words}): {text!r}"
        )
    return text, f"{task_id}/{index}"
