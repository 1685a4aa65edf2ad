"""The fixes to the pinned Snakemake (senorita/snakemake_fixes.py): its scheduler keeps one
pending wake-up, not one more chain of them per finished job, and its exit no longer waits for
the last one; its group check walks each group once, and still refuses a group that leaves and
re-enters itself."""

from __future__ import annotations

import re
import subprocess
import threading
import time

from conftest import BIN, REPO
from senorita.snakemake_fixes import check_each_group_once, keep_one_reevaluation


class FakeScheduler:
    def __init__(self) -> None:
        self._open_jobs = threading.Semaphore(0)


def test_passes_that_each_ask_for_a_wake_up_get_one():
    from snakemake.scheduling.job_scheduler import JobScheduler

    assert keep_one_reevaluation() and keep_one_reevaluation()  # applying twice is harmless
    scheduler = FakeScheduler()
    for _ in range(50):  # fifty passes of the loop: unpatched, fifty timers (fifty wake-ups)
        JobScheduler._schedule_reevalutation(scheduler, 0.2)
    assert scheduler._senorita_reevaluation.daemon
    assert scheduler._open_jobs.acquire(timeout=2)
    assert not scheduler._open_jobs.acquire(timeout=0.5)
    # Once it has fired, the next pass's request starts a new one.
    JobScheduler._schedule_reevalutation(scheduler, 0.05)
    assert scheduler._open_jobs.acquire(timeout=2)


def test_a_run_ends_without_waiting_for_its_rate_limit_timer(tmp_path):
    (tmp_path / "Snakefile").write_text(
        "from senorita.snakemake_fixes import keep_one_reevaluation\n"
        "keep_one_reevaluation()\n"
        "rule all:\n"
        "    input: expand('o/{i}.txt', i=range(6))\n"
        "rule one:\n"
        "    output: 'o/{i}.txt'\n"
        "    shell: 'touch {output}'\n"
    )
    started = time.monotonic()
    # Unpatched, each pass leaves a 30-second timer that Snakemake's exit waits for.
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", "--max-jobs-per-timespan", "100/30s"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 20
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"{i}.txt" for i in range(6)]


GROUPED = """
from senorita import snakemake_fixes
snakemake_fixes.apply()
rule all:
    input: expand("c/{s}.txt", s=range(SHARDS))
rule ingest:
    output: "i/{s}.txt"
    shell: "touch {output}"
rule dedup:
    input: expand("i/{s}.txt", s=range(SHARDS))
    output: "d.txt"
    shell: "touch {output}"
rule clips:
    input: "d.txt"
    output: "b/{s}.txt"
    group: "shard"
    shell: "touch {output}"
rule pairs:
    input: "b/{s}.txt"
    output: "c/{s}.txt"
    group: "shard"
    shell: "touch {output}"
"""


def test_the_group_check_sees_each_group_once_and_gets_the_jobs_map_back():
    from senorita.snakemake_fixes import _each_group_once

    seen = []
    check = _each_group_once(lambda dag: seen.append(list(dag._group.values())))
    group_a, group_b = frozenset({"clips", "deblur"}), frozenset({"x"})
    dag = type("FakeDAG", (), {})()
    dag._group = {"clips": group_a, "deblur": group_a, "x": group_b}  # one entry per member job
    by_job = dag._group
    check(dag)
    assert sorted(map(sorted, seen[0])) == [["clips", "deblur"], ["x"]]  # unpatched: a twice
    assert dag._group is by_job


def test_a_plan_with_groups_passes_and_a_group_that_reenters_itself_is_refused(tmp_path):
    assert check_each_group_once() and check_each_group_once()  # the pinned Snakemake's loop

    def plan(snakefile: str) -> subprocess.CompletedProcess:
        (tmp_path / "Snakefile").write_text(snakefile)
        return subprocess.run(
            [str(BIN / "snakemake"), "-n", "--cores", "1"], cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip

    # Four shard groups of two jobs, each with every ingest job as an ancestor (through dedup).
    proc = plan("SHARDS = 4\n" + GROUPED)
    assert proc.returncode == 0, proc.stderr
    for rule in ("clips", "pairs"):
        assert re.search(rf"^{rule}\s+4$", proc.stdout, re.M), proc.stdout
    # pairs also reads what a job outside the group makes from clips: the group leaves itself and
    # comes back, which Snakemake's group checks still refuse with the fixes applied.
    bad = GROUPED.replace('input: "b/{s}.txt"', 'input: "b/{s}.txt", "d2.txt"') + (
        'rule dedup2:\n    input: "b/0.txt"\n    output: "d2.txt"\n    shell: "touch {output}"\n'
    )
    proc = plan("SHARDS = 1\n" + bad)
    assert proc.returncode != 0
    assert "from inside the group again" in proc.stdout + proc.stderr


def test_a_group_that_leaves_and_reenters_itself_is_found_in_one_pruned_walk():
    from senorita.snakemake_fixes import group_reenters_itself, topological_index

    # ingest_i -> dedup -> clips -> pairs; `side` depends on clips and pairs on side (re-entry).
    deps = {f"ingest{i}": set() for i in range(50)}
    deps |= {"dedup": {f"ingest{i}" for i in range(50)}, "clips": {"dedup"}, "pairs": {"clips"}}
    index = topological_index(deps, ["pairs", "clips"])
    assert all(index[d] < index[job] for job in deps for d in deps[job])
    assert not group_reenters_itself(deps, {"clips", "pairs"}, index)
    deps |= {"side": {"clips"}, "pairs": {"clips", "side"}}
    index = topological_index(deps, ["pairs", "clips"])
    assert group_reenters_itself(deps, {"clips", "pairs"}, index)
    assert not group_reenters_itself(deps, {"clips", "side", "pairs"}, index)


class Walked(dict):
    """A dependency map that counts the jobs a walk expands."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.expanded: list[str] = []

    def __getitem__(self, job):
        self.expanded.append(job)
        return super().__getitem__(job)


def test_the_linear_group_check_walks_no_ancestor_below_a_group_and_defers_to_snakemake():
    from senorita.snakemake_fixes import _linear_group_check

    shards = 30
    deps = Walked({f"ingest{i}": set() for i in range(shards)})
    deps["dedup"] = {f"ingest{i}" for i in range(shards)}
    groups = {}
    for s in range(shards):
        deps[f"clips{s}"], deps[f"pairs{s}"] = {"dedup", f"ingest{s}"}, {f"clips{s}"}
        groups[f"clips{s}"] = groups[f"pairs{s}"] = frozenset({f"clips{s}", f"pairs{s}"})
    called = []
    check = _linear_group_check(lambda dag: called.append(True))
    dag = type("FakeDAG", (), {})()
    dag._group, dag._dependencies = groups, deps
    check(dag)
    assert not called
    # Ordering visits each job once; the groups' walks expand no ingest job a second time
    # (Snakemake's walk expanded every ingest job once per group member: 30 x 60 here).
    assert max(deps.expanded.count(f"ingest{i}") for i in range(shards)) == 1
    deps["side"], deps["pairs3"] = {"clips3"}, {"clips3", "side"}
    check(dag)
    assert called == [True]  # a re-entry: Snakemake's own check runs, for its error


def test_function_parameters_are_read_once_per_function():
    import inspect as inspect_module

    import snakemake.common
    import snakemake.rules

    from senorita.snakemake_fixes import memoize_function_params

    assert memoize_function_params() and memoize_function_params()
    params = snakemake.common.get_function_params
    assert snakemake.rules.get_function_params is params

    def input_function(wildcards, attempt):
        return []

    first = params(input_function)
    assert list(first) == ["wildcards", "attempt"] and params(input_function) is first

    class Resource:
        def evaluate(self, *args, **kwargs):
            return None

    one, other = Resource(), Resource()
    assert params(one.evaluate) is params(other.evaluate)
    assert list(params(one.evaluate)) == ["args", "kwargs"]  # bound: self dropped
    # Snakemake's override (functions built with *args) still wins, whenever it is set.
    snakemake.common.overwrite_function_params(input_function, ["wildcards", "input"])
    assert params(input_function) == ["wildcards", "input"]

    class Callable:
        def __call__(self, wildcards, threads):
            return 1

    assert list(params(Callable())) == list(inspect_module.signature(Callable()).parameters)


def test_a_job_listing_formats_each_shell_command_once(tmp_path):
    (tmp_path / "Snakefile").write_text(
        "import atexit\n"
        "from senorita import snakemake_fixes\n"
        "snakemake_fixes.apply()\n"
        "import snakemake.jobs\n"
        "formatted = []\n"
        "format_wildcards = snakemake.jobs.Job.format_wildcards\n"
        "def counting(self, string, **variables):\n"
        "    formatted.append(string)\n"
        "    return format_wildcards(self, string, **variables)\n"
        "snakemake.jobs.Job.format_wildcards = counting\n"
        "atexit.register(lambda: print('formatted', formatted.count(SHELL), 'times'))\n"
        "SHELL = 'echo {wildcards.i} {params.p} > {output}'\n"
        "rule all:\n"
        "    input: expand('o/{i}.txt', i=range(3))\n"
        "rule one:\n"
        "    output: 'o/{i}.txt'\n"
        "    params: p=lambda wc: int(wc.i) * 10\n"
        "    shell: SHELL\n"
    )
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-n", "-p", "--cores", "1"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "formatted 3 times" in out  # unpatched: 9, three per job
    for i in range(3):
        assert f"echo {i} {i * 10} > o/{i}.txt" in out


def test_the_planning_benchmark_runs_its_four_plans_at_a_small_scale():
    # benchmarks/dag_planning.py at 4 and 2 shards: the table, the plain floor, the first job.
    proc = subprocess.run(
        [str(BIN / "python"), str(REPO / "benchmarks" / "dag_planning.py"), "--videos", "400",
         "--shards", "4", "--baseline-shards", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line[:24].strip(): line[24:].split() for line in proc.stdout.splitlines()[1:4]}
    assert set(rows) == {"baseline", "plain Snakemake (floor)", "recommended"}
    shards, jobs, planned, dry_run, first_job = rows["recommended"][:5]
    assert shards == "4" and int(jobs) > 4 * 20  # every task's job per shard
    assert 0 < float(planned) < float(dry_run) and float(first_job) > 0
    assert rows["baseline"][4] == rows["plain Snakemake (floor)"][4] == "-"
    assert "goal (< 60 s and < 4 GiB at 4 shards" in proc.stdout
