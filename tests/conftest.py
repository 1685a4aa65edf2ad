"""Shared test helpers: run the workflow in a scratch folder with the repository's Snakefile."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

# Under xdist, torch's and the BLAS libraries' pools would each take every core: n workers of n
# threads on n cores, which doubled the model tests' time on 2 cores (137 s against 75 s). Each
# worker gets its share, set before anything imports torch.
if _workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, len(os.sched_getaffinity(0)) // int(_workers)))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, _share)

from senorita.tasks import task_ids

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The tasks made by operators: the six every default run builds.
OPERATOR_TASKS = task_ids("operator")


def only_tasks(*enabled: str) -> dict[str, dict[str, bool]]:
    """A config's ``tasks`` section enabling ``enabled`` and no other registered task."""
    unknown = set(enabled) - set(task_ids())
    assert not unknown, f"not registered: {unknown}"
    return {t: {"enabled": t in enabled} for t in task_ids()}


def snakemake(
    workdir: Path,
    *args: str,
    config: dict | None = None,
    check: bool = True,
    env: dict | None = None,
    timeout: int = 1800,
    warm: bool = False,
) -> subprocess.CompletedProcess:
    """Run snakemake on the repo's Snakefile in ``workdir``, ``config`` merged over the default;
    ``warm``: beside a warm worker, as `make demo` runs it (`senorita warm -- snakemake ...`)."""
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    if warm:
        cmd = [str(BIN / "senorita"), "warm", "--log", str(workdir / "worker.log"), "--", *cmd]
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


def neutral_table(path: Path, root: Path) -> pd.DataFrame:
    """A table with ``root`` (the run folder, which stages record in absolute paths) cut out of
    its strings, so the tables of two runs in two folders compare by content."""
    table = pd.read_parquet(path)
    prefix = f"{root}/"
    for col in table.columns:
        table[col] = table[col].map(lambda v: v.replace(prefix, "") if isinstance(v, str) else v)
    return table


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The embedded default, run once for the whole session (read-only for tests).

    Run as `make demo` runs it, beside a warm worker (the SLURM test's local run compares every
    output with a run without one). Under xdist the first worker to ask runs it in the folder the
    workers share, holding a lock; the others wait and use that run (pytest-xdist's recipe for a
    session fixture made once). ``SENORITA_DEMO_RUN=<folder>`` reuses a finished run of the
    current code instead (a development shortcut: the run takes 3 to 7 minutes on 2 cores); CI
    never sets it.
    """
    if reuse := os.environ.get("SENORITA_DEMO_RUN"):
        assert not CI, "SENORITA_DEMO_RUN is for development runs, not CI"
        return Path(reuse).resolve()
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: no other worker to share with
        workdir = tmp_path_factory.mktemp("demo")
        snakemake(workdir, "--cores", "2", "all", warm=True)
        return workdir
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent
    workdir, done = shared / "demo", shared / "demo.done"
    with FileLock(shared / "demo.lock"):
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)  # a worker that failed to finish it
            snakemake(workdir, "--cores", "2", "all", warm=True)
            done.touch()
    return workdir


def planned(stdout: str) -> dict[str, int]:
    """Jobs per rule from a dry run's job-stats table."""
    counts = {}
    for line in stdout.split("Job stats:")[1].splitlines()[3:]:
        if not line.strip() or line.startswith("total"):
            break
        rule, count = line.split()
        counts[rule] = int(count)
    return counts


# -- markers and CI strictness ---------------------------------------------------------------------

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _runs_the_workflow(item: pytest.Item) -> bool:
    """A test runs the workflow when it uses the demo run, calls Snakemake (``snakemake(``
    here, or the binary), or is marked so (``e2e``, or ``slow`` as the older tests are)."""
    if "demo_run" in getattr(item, "fixturenames", ()):
        return True
    if item.get_closest_marker("e2e") or item.get_closest_marker("slow"):
        return True
    try:
        source = inspect.getsource(item.obj)
    except (OSError, TypeError):
        return False
    return "snakemake(" in source or '"snakemake"' in source


def pytest_collection_modifyitems(config, items):
    # `make test-fast` deselects these (-m "not e2e"); `make test` and CI run everything.
    for item in items:
        if _runs_the_workflow(item):
            item.add_marker(pytest.mark.e2e)
    # `make test` hands the files to its xdist workers in this order (--no-loadscope-reorder): the
    # slow ones first (the SLURM tests spend minutes waiting on the cluster: the other worker's
    # work overlaps them), then those that read the demo run, so one worker makes it early while
    # the other has work of its own. Within each kind the files keep their order.
    items.sort(
        key=lambda item: (
            item.get_closest_marker("slow") is None,
            "demo_run" not in getattr(item, "fixturenames", ()),
        )
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test is a failure: a missing browser or SLURM must not pass
    silently as green."""
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


# -- the judge's model: its Qwen2.5-VL twin and a scripted stand-in ---------------------------


@pytest.fixture(scope="session")
def qwen(tmp_path_factory):
    from senorita.testing.tiny.qwen2_5_vl import build_qwen2_5_vl

    return build_qwen2_5_vl(tmp_path_factory.mktemp("judge") / "qwen")


class ScriptedModel:
    """A stand-in model that answers from a script (a model class, not a branch in the judge):
    each ``generate`` call appends the next scripted answer, tokenized, to every prompt."""

    def __init__(self, tokenizer, answers: list[str]):
        import torch

        self.tokenizer, self.answers, self.asked = tokenizer, list(answers), []
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        yield self.weight

    def to(self, device):
        return self

    def eval(self):
        return self

    def generate(self, input_ids, **kwargs):
        import torch

        rows = []
        for ids in input_ids:
            self.asked.append(self.tokenizer.decode(ids))
            answer = self.tokenizer(self.answers.pop(0), add_special_tokens=False)["input_ids"]
            rows.append(torch.cat([ids, torch.tensor(answer, dtype=ids.dtype)]))
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        return torch.stack(
            [torch.nn.functional.pad(r, (0, width - len(r)), value=pad) for r in rows]
        )
