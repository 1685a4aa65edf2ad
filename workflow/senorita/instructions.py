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


# Words whose first letter misleads: a vowel letter with a consonant sound, and a silent h.
_A_BEFORE = ("one", "once", "uni", "use", "usu", "ute", "uti", "eu", "ewe", "ubi", "ura", "uro")
_AN_BEFORE = ("hour", "honest", "honor", "honour", "heir", "herb")


def indefinite_article(phrase: str) -> str:
    """The indefinite article for the noun phrase ``phrase``: "an orange car", "a yellow house",
    "a unicorn", "an hour", by the first word's sound as far as spelling tells it."""
    word = phrase.strip().split()[0].lower() if phrase.strip() else ""
    if word.startswith(_AN_BEFORE):
        return "an"
    if not word or word.startswith(_A_BEFORE):
        return "a"
    if len(word) == 1:  # a letter, said by its name: "an x-ray", "a t-shirt"
        return "an" if word in "aefhilmnorsx" else "a"
    return "an" if word[0] in "aeiou" else "a"
