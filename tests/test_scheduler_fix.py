"""Snakemake's scheduler keeps one pending wake-up (senorita/scheduler_fix.py), not one more
chain of them per finished job, and its exit no longer waits for the last one."""

from __future__ import annotations

import subprocess
import threading
import time

from conftest import BIN
from senorita.scheduler_fix import keep_one_reevaluation


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
        "from senorita.scheduler_fix import keep_one_reevaluation\n"
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
