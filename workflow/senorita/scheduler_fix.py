"""One pending wake-up in Snakemake's scheduler, instead of one more chain of them per job.

Snakemake 9's job scheduler (``snakemake.scheduling.job_scheduler.JobScheduler``) ends every pass
of its loop by starting a ``threading.Timer`` that wakes the loop again after the rate limit's
timespan (``--max-jobs-per-timespan``, 1 s by default; the SLURM profile's
``max-jobs-per-second``). A pass that a timer started starts the next timer, and every pass that
a finished job started starts one more, so after N finished jobs N chains wake the loop N times a
second, each pass selecting among every ready job. The embedded default's 123 jobs made about
7,500 passes; at 2,000 shards (54,000 jobs, a week) the loop would never sleep and hold one core
of the node it runs on. The timers are not daemon threads either, so Snakemake's exit waits for
the last one. The open pull request snakemake/snakemake#3744 reports the extra passes.

``keep_one_reevaluation`` replaces the method that starts the timer with one that starts it only
when none is pending, as a daemon thread. The loop still wakes within one timespan of any pass (the
rate limit's purpose), and a finished job still wakes it at once. The Snakefile applies it; with a
Snakemake whose scheduler lacks the method (a fixed or changed release) it changes nothing.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

PATCHED = "_senorita_one_pending_reevaluation"


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
