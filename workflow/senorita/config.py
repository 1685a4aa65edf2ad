"""Config checks that read well: every problem on one line, naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml


def config_errors(config: dict[str, Any], schema_path: str | Path) -> list[str]:
    """All schema violations of ``config``, each as ``config key 'a.b': message``."""
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(str(p) for p in err.absolute_path)
        errors.append(f"config key '{key}': {err.message}" if key else f"config: {err.message}")
    return errors


def fill_registered(config: dict[str, Any]) -> dict[str, Any]:
    """Fill a registered task's config (``senorita.tasks.register``) as the schema fills the
    built-in ones: ``tasks.<id>`` gets the common defaults, ``filters.tasks.<id>`` the bounds of
    the first built-in task of the same ``filter_kind`` (keys given in the config win)."""
    from senorita.tasks import TASKS, all_tasks

    tasks, bounds = config["tasks"], config["filters"]["tasks"]
    for task in all_tasks()[len(TASKS) :]:
        tasks[task.id] = {"enabled": True, "clip_fraction": 1.0, **tasks.get(task.id, {})}
        like = next(t.id for t in TASKS if t.filter_kind == task.filter_kind)
        bounds[task.id] = {**bounds[like], **bounds.get(task.id, {})}
    return config
