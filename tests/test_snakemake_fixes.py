"""The fixes to the pinned Snakemake (senorita/snakemake_fixes.py): its scheduler keeps one
pending wake-up, not one more chain of them per finished job, and its exit no longer waits for
the last one; its group check walks each group once, and still refuses a group that leaves and
re-enters itself."""

from __future__ import annotations

import re
import subprocess
import threading
import time

from conftest import BIN
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
