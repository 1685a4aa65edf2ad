"""What made an output: code version and the packages it ran with."""

from __future__ import annotations

import functools
import os
import re
import shutil
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


SECRET_WORDS = ("key", "apikey", "token", "secret", "password", "passwd", "credentials")


def _secret_name(name: object) -> bool:
    """A key naming a secret: one of its words (snake, kebab or camel case) is a secret word, so
    ``api_key`` and ``hfToken`` are and ``max_clip_tokens`` is not."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower())
    return any(w in SECRET_WORDS for w in words)


def redact(value: object) -> object:
    """A config with any secret-looking key's value replaced (secrets come from the environment,
    but a config dump must never carry one even if a user put it there)."""
    if isinstance(value, dict):
        return {k: "<redacted>" if _secret_name(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def model_tag(model: str | None, revision: str | None) -> str:
    """The ``model@revision`` tag a row's ``maker`` carries (``@local`` for a local path)."""
    return f"{model}@{revision or 'local'}"


def stage_provenance(stage: str, **params: object) -> dict:
    """What a stage's table records about how it was made."""
    return {
        "stage": stage,
        "code_version": code_version(),
        "packages": package_versions(),
        "ffmpeg": ffmpeg_version(),
        "params": redact(params),
    }


def ffmpeg_version() -> str:
    """The first line of ``ffmpeg -version`` for the ``ffmpeg`` on ``PATH`` ("absent" without one).

    Asked once per binary (its path, size and modification time): starting Debian's ffmpeg costs
    about 0.1 s of loading its 200 libraries, and the warm worker asks before it forks the jobs, so
    a job whose ``PATH`` finds the same ffmpeg does not ask again.
    """
    path = shutil.which("ffmpeg")
    if path is None:
        return "absent"
    try:
        stat = os.stat(path)
    except OSError:
        return "absent"
    return _ffmpeg_version(path, stat.st_size, stat.st_mtime_ns)


@functools.cache
def _ffmpeg_version(path: str, size: int, mtime_ns: int) -> str:
    try:
        out = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "absent"
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def versions_record(config: dict) -> dict:
    """Everything a reader needs to know what made this run's outputs."""
    import platform
    import sys

    return {
        "code_version": code_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "ffmpeg": ffmpeg_version(),
        "config": redact(config),
    }
