"""Shared test helpers: run the workflow in a scratch folder with the repository's Snakefile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from senorita.tasks import MAKERS

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The tasks made by operators: the six every default run builds.
OPERATOR_TASKS = [t for t, stage in MAKERS.items() if stage == "operator"]


def snakemake(
    workdir: Path,
    *args: str,
    config: dict | None = None,
    check: bool = True,
    env: dict | None = None,
    timeout: int = 900,
) -> subprocess.CompletedProcess:
    """Run snakemake on the repo's Snakefile in ``workdir``, ``config`` merged over the default."""
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    if config is not None:
        path = workdir / "test-config.yaml"
        workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(path)]
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The embedded default, run once for the whole session (read-only for tests)."""
    workdir = tmp_path_factory.mktemp("demo")
    snakemake(workdir, "--cores", "2", "all")
    return workdir
