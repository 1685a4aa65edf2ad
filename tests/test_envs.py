"""The conda environments (envs/) and the profiles (profiles/) stay consistent with the project.

Cheap checks that need no cluster and no conda: pins agree with pyproject.toml and
requirements/constraints.txt, every rule names an environment that exists, the profiles render
and take their site settings from the environment, and `snakemake --lint` has nothing to say.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib  # stdlib from 3.11, requires-python's floor
from importlib.metadata import PackageNotFoundError, distribution

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from snakemake.profiles import ProfileConfigFileParser

from conftest import BIN, REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
# Tools for running the workflow, not for running its rules.
NOT_IN_RULE_ENVS = {"snakemake", "snakemake-executor-plugin-slurm"}


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{line}: not an exact pin"
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def _project_pins() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    direct = _pins(project["dependencies"])
    constraints = _pins((REPO / "requirements" / "constraints.txt").read_text().splitlines())
    return direct, constraints


def _env_pip_pins(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    return _pins(pip)


def test_there_is_a_cpu_and_a_gpu_env():
    assert {p.stem for p in ENVS} == {"cpu", "gpu"}


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.stem)
def test_env_pins_agree_with_pyproject(env_file):
    direct, constraints = _project_pins()
    pins = _env_pip_pins(env_file)
    # Every runtime dependency of the package, at the version pyproject.toml pins...
    wanted = {name: v for name, v in direct.items() if name not in NOT_IN_RULE_ENVS}
    assert {name: pins.get(name) for name in wanted} == wanted
    # ...and nothing pinned differently from the constraints every install uses.
    assert {n: v for n, v in pins.items() if constraints.get(n) != v} == {}


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.stem)
def test_env_python_matches_requires_python(env_file):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", project["requires-python"]).groups()
    env = yaml.safe_load(env_file.read_text())
    (python,) = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    version = tuple(int(x) for x in python.split("=")[1].split("."))
    assert version >= tuple(int(x) for x in minimum)
    assert (REPO / "envs" / f"{env_file.stem}.post-deploy.sh").exists()


def test_every_pinned_dependency_installs_on_the_oldest_python_requires_python_allows():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    minimum = re.fullmatch(r">=(\d+\.\d+)", project["requires-python"]).group(1)
    refused = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            pytest.fail(f"{req.name} is not installed: install the project (make setup)")
        # The installed distribution is the pinned one, so its metadata speaks for the pin.
        assert req.specifier.contains(dist.version), (req.name, dist.version)
        needs = dist.metadata.get("Requires-Python")
        if needs and not SpecifierSet(needs).contains(f"{minimum}.0"):
            refused[req.name] = needs
    assert refused == {}, f"requires-python >={minimum}, but these pins need more"


def test_every_rule_with_a_command_names_an_existing_env():
    named = set()
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = len(re.findall(r"^rule \w+:", text, re.M))
        envs = re.findall(r'^    conda:\n        "([^"]+)"', text, re.M)
        assert len(envs) == rules, f"{smk.name}: {rules} rules, {len(envs)} conda directives"
        for env in envs:
            assert (smk.parent / env).resolve().exists(), f"{smk.name}: {env} is missing"
            named.add((smk.parent / env).resolve().name)
    assert named == {p.name for p in ENVS}


def _render(profile: str, env: dict[str, str]) -> dict:
    old = dict(os.environ)
    os.environ.update(env)
    try:
        with open(REPO / "profiles" / profile / "config.yaml") as fh:
            return ProfileConfigFileParser().parse(fh)
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_slurm_profile_takes_site_settings_from_the_environment():
    bare = _render("slurm", {})
    assert bare["executor"] == "slurm"
    assert not any(
        r.startswith(("slurm_account", "slurm_partition", "qos")) for r in bare["default-resources"]
    )
    assert "mem_mb=2000 * attempt" in bare["default-resources"]
    assert "device_report:gpu=1" in bare["set-resources"]

    site = _render(
        "slurm",
        {
            "SENORITA_SLURM_ACCOUNT": "lab",
            "SENORITA_SLURM_PARTITION": "cpu",
            "SENORITA_SLURM_GPU_PARTITION": "gpu",
            "SENORITA_SLURM_QOS": "long",
            "SENORITA_SLURM_GPU_MODEL": "a100",
            "SENORITA_SLURM_JOB_CORES": "16",
        },
    )
    assert {"slurm_account='lab'", "slurm_partition='cpu'", "qos='long'"} <= set(
        site["default-resources"]
    )
    # Every rule that loads a model runs in the GPU partition.
    for rule in ("device_report", "captions", "control_maps", "masks", "filter_scores"):
        assert {f"{rule}:slurm_partition='gpu'", f"{rule}:gpu_model='a100'"} <= set(
            site["set-resources"]
        )
    for rule in ("expert_pairs", "train_expert"):
        assert f"{rule}:slurm_partition='gpu'" in site["set-resources"]
    assert site["cores"] == "16"


def test_local_profile_counts_gpus():
    assert "gpu=1" in _render("local", {})["resources"]
    assert "gpu=2" in _render("local", {"SENORITA_LOCAL_GPUS": "2"})["resources"]


def test_no_default_profile():
    # Snakemake loads profiles/default/ on its own: SLURM must never be the silent default.
    assert not (REPO / "profiles" / "default").exists()


@pytest.mark.parametrize("profile", [None, "slurm", "local"])
def test_lint_is_clean(profile, tmp_path):
    args = ["--profile", str(REPO / "profiles" / profile)] if profile else []
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--lint", "-s", str(REPO / "Snakefile"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr
    assert "good condition" in proc.stdout + proc.stderr
