"""Fixes for the pinned Snakemake (9.27.1), applied by ``rules/common.smk``. Each wraps or
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

**The group check in topological order** (``check_groups_in_topological_order``). Even once per
group, that walk visits every ancestor of every member: the ingest jobs behind each shard
group, 7 million visits at 1,000 shards (9 s of the plan under the profiler), growing with the
square of the shard count. A path that leaves a group and comes back descends through jobs that
all come after the group's first member in a topological order, so one walk per group from its
members' outside dependencies, stopping at jobs that come before that member, finds every such
path: a linear check (with the two fixes below, a 2,000-shard plan went from 58.4 s to 45.6 s
and its dry run from 107.3 s to 83.0 s). When it finds one, Snakemake's own check runs (each
group once) and raises its own error, naming the rules.

**Function signatures read once** (``memoize_function_params``). Snakemake asks
``inspect.signature`` for the parameters of every input, params and resource function, and of
every resource's ``evaluate`` method, once per job and function: 310,000 calls at 1,000 shards,
9% of a plan. A function's parameters do not change, so they are kept per function.

**Shell command formatted once per job listing** (``format_shell_command_once``).
``Job.log_info``, which prints every job as it is submitted (every job at once in a dry run),
formats the job's shell command three times; with this workflow's long command lines, two of
those are about 8% of a dry run. The listing now formats it once and reuses it within that call.
"""

from __future__ import annotations

import inspect
import threading
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

PATCHED = "_senorita_fixed"  # marks a method this module put in place


def _source(obj: Any) -> str:
    """The source of a Snakemake function, or "" where Python cannot show it."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


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
    if "for group in self._group.values():" not in _source(original):
        return False  # not the loop this fixes
    DAG._check_groups = _each_group_once(original)
    return True


def topological_index(dependencies: Any, jobs: Iterable[Any]) -> dict[Any, int]:
    """Each job reachable from `jobs` through `dependencies` (job -> its dependencies), numbered
    so that a job's dependencies come before it (depth-first post-order, no recursion)."""
    index: dict[Any, int] = {}
    entered: set[Any] = set()
    for root in jobs:
        if root in index:
            continue
        stack = [(root, iter(dependencies[root]))]
        entered.add(root)
        while stack:
            job, deps = stack[-1]
            for dep in deps:
                if dep not in entered:
                    entered.add(dep)
                    stack.append((dep, iter(dependencies[dep])))
                    break
            else:
                stack.pop()
                index[job] = len(index)
    return index


def group_reenters_itself(dependencies: Any, members: set[Any], index: dict[Any, int]) -> bool:
    """Whether a path of dependencies leaves the group `members` and comes back into it.

    Every job on such a path comes after the member it ends at in the topological `index`, so the
    walk stops at jobs before the group's first member.
    """
    first = min(index[m] for m in members)
    stack = [d for m in members for d in dependencies[m] if d not in members]
    seen = set(stack)
    while stack:
        job = stack.pop()
        if index[job] < first:
            continue
        for dep in dependencies[job]:
            if dep in members:
                return True
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return False


def _linear_group_check(check: Callable[[Any], None]) -> Callable[[Any], None]:
    def check_groups(self: Any) -> None:
        groups = {id(group): group for group in self._group.values()}.values()
        deps = self._dependencies
        index = topological_index(deps, (job for group in groups for job in group))
        if any(group_reenters_itself(deps, set(group), index) for group in groups):
            check(self)  # Snakemake's own check, for its error naming the rules

    setattr(check_groups, PATCHED, True)
    return check_groups


def check_groups_in_topological_order() -> bool:
    """Patch Snakemake's group check (see the module's docstring); whether it is now patched."""
    if not check_each_group_once():
        return False
    from snakemake.dag import DAG

    if getattr(DAG._check_groups, "_senorita_linear", False):
        return True
    checked = _linear_group_check(DAG._check_groups)
    checked._senorita_linear = True  # type: ignore[attr-defined]
    DAG._check_groups = checked
    return True


def _memoized(original: Callable[[Callable], Any], overwrite_attr: str) -> Callable:
    by_function: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    by_method: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get_function_params(func: Callable) -> Any:
        if hasattr(func, overwrite_attr):  # as Snakemake: a set list wins, checked every call
            return getattr(func, overwrite_attr)
        if isinstance(func, types.FunctionType):
            cache, key = by_function, func
        elif isinstance(func, types.MethodType) and isinstance(func.__func__, types.FunctionType):
            cache, key = by_method, func.__func__  # a bound method's: its function's, less self
        else:
            return original(func)
        params = cache.get(key)
        if params is None:
            params = cache[key] = original(func)
        return params

    setattr(get_function_params, PATCHED, True)
    return get_function_params


def memoize_function_params() -> bool:
    """Keep each function's parameters (see the module's docstring); whether it is now patched."""
    try:
        import snakemake.api  # noqa: F401  (as above)
        import snakemake.common as common
        import snakemake.jobs as jobs
        import snakemake.rules as rules
    except ImportError:
        return False
    original = getattr(common, "get_function_params", None)
    attr = getattr(common, "FUNC_OVERWRITE_PARAMS_ATTR", None)
    if original is None or attr is None:
        return False
    if getattr(original, PATCHED, False):
        return True
    if "inspect.signature(func).parameters" not in _source(original):
        return False  # not the function this memoizes
    memoized = _memoized(original, attr)
    for module in (common, rules, jobs):
        if getattr(module, "get_function_params", None) is original:
            module.get_function_params = memoized
    return True


_pinned_shellcmd: dict[int, str | None] = {}


def format_shell_command_once() -> bool:
    """Format a job's shell command once per listing (see the module's docstring); whether it is
    now patched."""
    try:
        import snakemake.api  # noqa: F401  (as above)
        from snakemake.jobs import Job
    except ImportError:
        return False
    log_info, shellcmd = Job.__dict__.get("log_info"), Job.__dict__.get("shellcmd")
    if log_info is None or not isinstance(shellcmd, property) or shellcmd.fget is None:
        return False
    if getattr(log_info, PATCHED, False):
        return True
    if _source(log_info).count("self.shellcmd") < 2:
        return False  # already formats it once, or not the method this fixes
    formats = shellcmd.fget

    def pinned_shellcmd(self: Any) -> str | None:
        # Pinned only while this job's log_info runs (the job is alive, so its id is its own).
        if id(self) in _pinned_shellcmd:
            return _pinned_shellcmd[id(self)]
        return formats(self)

    def log_info_once(self: Any, *args: Any, **kwargs: Any) -> None:
        if id(self) in _pinned_shellcmd:  # re-entered
            return log_info(self, *args, **kwargs)
        _pinned_shellcmd[id(self)] = formats(self)
        try:
            return log_info(self, *args, **kwargs)
        finally:
            del _pinned_shellcmd[id(self)]

    pinned_shellcmd.__doc__ = formats.__doc__
    setattr(log_info_once, PATCHED, True)
    Job.shellcmd = property(pinned_shellcmd)
    Job.log_info = log_info_once
    return True


def apply() -> dict[str, bool]:
    """Apply every fix; which of them are in place."""
    return {
        "one pending scheduler wake-up": keep_one_reevaluation(),
        "each group checked once, in topological order": check_groups_in_topological_order(),
        "function signatures read once": memoize_function_params(),
        "shell command formatted once per listing": format_shell_command_once(),
    }
