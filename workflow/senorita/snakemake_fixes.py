"""Two fixes for the pinned Snakemake (9.27.1), applied by ``rules/common.smk``. Each wraps or
replaces one private method only when that method still has the flaw it fixes, and changes
nothing otherwise (a fixed or changed release).

**One pending wake-up in the scheduler** (``keep_one_reevaluation``). Snakemake 9's job scheduler
(``snakemake.scheduling.job_scheduler.JobScheduler``) ends every pass of its loop by starting a
``threading.Timer`` that wakes the loop again after the rate limit's timespan
(``--max-jobs-per-timespan``, 1 s by default; the SLURM profile's ``max-jobs-per-second``). A pass
that a timer started starts the next timer, and every pass that a finished job started starts one
more, so after N finished jobs N chains wake the loop N times a second, each pass selecting among
every ready job. The embedded default's 123 jobs made about 7,500 passes; at 2,000 shards (54,000
jobs, a week) the loop would never sleep and hold one core of the node it runs on. The timers are
not daemon threads either, so Snakemake's exit waits for the last one. The open pull request
snakemake/snakemake#3744 reports the extra passes. The replacement starts a timer only when none
is pending, as a daemon thread: the loop still wakes within one timespan of any pass (the rate
limit's purpose), and a finished job still wakes it at once.

**Each group checked once** (``check_each_group_once``). ``DAG._check_groups`` (no group may leave
and re-enter itself) loops over ``self._group.values()``, which holds a group once per member job,
and walks every ancestor of every member each time: a group of k jobs is walked k² times. Every
shard's SLURM group (its clips and operator pairs) has all ingest jobs as ancestors through the
one dedup job, so at 2,000 shards the check cost about 130 s of each plan (353 s against 220 s
with the wrapper, `benchmarks/dag_planning.py`), growing with the square of the shard count. The
wrapper runs the same check with each group listed once.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

PATCHED = "_senorita_fixed"  # marks a method this module put in place


def _schedule_once(self: Any, delay: float) -> None:
    pending = getattr(self, "_senorita_reevaluation", None)
    if pending is not None and pending.is_alive():
        return
    timer = threading.Timer(delay, self._open_jobs.release)
    timer.daemon = True  # Snakemake's exit does not wait for a wake-up nobody needs
    timer.start()
    self._senorita_reevaluation = timer


def keep_one_reevaluation() -> bool:
    """Patch Snakemake's scheduler (see the module's docstring); whether it is now patched."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    original = getattr(JobScheduler, "_schedule_reevalutation", None)  # sic: Snakemake's spelling
    if original is None:
        return False
    if getattr(original, PATCHED, False):
        return True
    if list(inspect.signature(original).parameters) != ["self", "delay"]:
        return False  # not the method this replaces
    setattr(_schedule_once, PATCHED, True)
    JobScheduler._schedule_reevalutation = _schedule_once
    return True


def _each_group_once(check: Callable[[Any], None]) -> Callable[[Any], None]:
    def check_groups(self: Any) -> None:
        by_job = self._group
        self._group = {group: group for group in set(by_job.values())}
        try:
            check(self)
        finally:
            self._group = by_job

    setattr(check_groups, PATCHED, True)
    return check_groups


def check_each_group_once() -> bool:
    """Patch Snakemake's group check (see the module's docstring); whether it is now patched."""
    try:
        import snakemake.api  # noqa: F401  (snakemake.dag or .workflow first: a circular import)
        from snakemake.dag import DAG
    except ImportError:
        return False
    original = getattr(DAG, "_check_groups", None)
    if original is None:
        return False
    if getattr(original, PATCHED, False):
        return True
    try:
        source = inspect.getsource(original)
    except (OSError, TypeError):
        return False
    if "for group in self._group.values():" not in source:
        return False  # not the loop this fixes
    DAG._check_groups = _each_group_once(original)
    return True


def apply() -> dict[str, bool]:
    """Apply both fixes; which of them are in place."""
    return {
        "one pending scheduler wake-up": keep_one_reevaluation(),
        "each group checked once": check_each_group_once(),
    }
