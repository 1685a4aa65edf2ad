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
