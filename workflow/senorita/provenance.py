"""What made an output: code version and the packages it ran with."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

import senorita

PACKAGES = [
    "senorita",
    "numpy",
    "pandas",
    "pyarrow",
    "opencv-python-headless",
    "ffmpeg-python",
    "scenedetect-headless",
    "snakemake",
    "torch",
    "transformers",
    "huggingface_hub",
    "safetensors",
]


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=Path(senorita.__file__).parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def code_version() -> str:
    """``<version>+g<commit>[.dirty]`` inside a git checkout, else the package version."""
    commit = _git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return senorita.__version__
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return f"{senorita.__version__}+g{commit}{'.dirty' if dirty else ''}"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions
