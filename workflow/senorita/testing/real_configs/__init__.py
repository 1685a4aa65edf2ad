"""The published configurations of the real checkpoints the model registry defaults to.

One folder per hub repository, named as the hub cache names it (``THUDM/CogVideoX-2b`` ->
``THUDM--CogVideoX-2b``), holding the repository's small config files at their own paths
(``model_index.json``, ``transformer/config.json``, ...), ``FILES.txt`` (every file the real
repository holds, weights included, one path a line) and ``SOURCE.md`` (where each value came
from). The tiny twins are built from these by shrinking sizes only; tests compare them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent


def folder(repo: str) -> Path:
    path = ROOT / repo.replace("/", "--")
    if not path.is_dir():
        raise FileNotFoundError(f"no real-config fixture for {repo} (looked in {path})")
    return path


def real_config(repo: str, name: str = "config.json") -> dict[str, Any]:
    """A config file of the real repository, e.g. ``real_config(id, "transformer/config.json")``."""
    return json.loads((folder(repo) / name).read_text(encoding="utf-8"))


def real_files(repo: str) -> list[str]:
    """Every file the real repository holds (from its FILES.txt)."""
    text = (folder(repo) / "FILES.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def differences(
    real: dict[str, Any], twin: dict[str, Any], size_keys: set[str], prefix: str = ""
) -> list[str]:
    """Keys (dotted, nested dicts included) where ``twin`` differs from ``real`` other than the
    ``size_keys`` (matched by their last name, e.g. ``num_layers``). Keys that only the library
    writes (``_diffusers_version``, ``transformers_version``, ``_name_or_path``...) are ignored."""
    ignored = {"_diffusers_version", "transformers_version", "_name_or_path", "architectures_"}
    out = []
    for key in sorted(set(real) | set(twin)):
        if key in ignored or key in size_keys:
            continue
        name = f"{prefix}{key}"
        a, b = real.get(key, "<absent>"), twin.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, size_keys, prefix=name + ".")
        elif a != b:
            out.append(f"{name}: real {a!r}, twin {b!r}")
    return out
