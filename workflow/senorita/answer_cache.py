"""Model answers cached per key in a JSON-lines file that survives reruns and kills.

Each answer is appended (and flushed) as it comes, so a killed job loses at most the one being
written; a torn last line is skipped on reading. Used by the language model's answers and the
judge's verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path


class AnswerCache:
    """Answers per (clip, question), kept in a JSON-lines file across reruns."""

    def __init__(self, path: Path):
        self.path = path
        self.answers: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # the line being written when a job died
                    continue
                self.answers[entry["key"]] = entry
        path.parent.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict | None:
        return self.answers.get(key)

    def put(self, key: str, entry: dict) -> None:
        entry = {"key": key, **entry}
        self.answers[key] = entry
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
