"""DAG planning at Señorita scale: a dry run over a synthetic catalogue of 390,000 videos.

With static sharding the DAG has O(shards × tasks) jobs whatever the number of videos, so
planning cost follows the shard count. This plans `snakemake -n all` with every registered task,
at the full scale of 2,000 shards (the goal: under 60 s and 4 GB on 2 cores) and, as baselines
measured in the same run, at 200 shards and, at the full job count, a plain Snakemake workflow
(one-line shell rules with one input each, no functions, params or resources): Snakemake's own
floor for that many jobs.

Three times: **planned**, when the DAG is built and the job counts are printed (all that
`snakemake -n -q` does); **dry run**, when `snakemake -n` has also listed every job (message,
reason and shell command); and **first job**, when a real run with the SLURM executor (`snakemake
--executor slurm --jobs 100 all`, as the SLURM profile runs it; SLURM's commands replaced by ones
that fail, so nothing is submitted) lists its first job for submission, and is killed. A real run
lists each job as it submits it, over the run.

    python benchmarks/dag_planning.py [--videos 390000] [--shards 2000] [--baseline-shards 200]
    python benchmarks/dag_planning.py --profile plan.prof --shards 200   # where the time goes

``--profile`` runs only the first plan, under cProfile, and prints its time by phase (start-up
imports, parsing the Snakefile, building the DAG, the dry run's job listing), the time Snakemake
spends inspecting the signatures of input, params and resource functions (once per job and
function), and the workflow's own functions (rules/*.smk, the Snakefile) by cumulative time.
Profiling roughly doubles the wall time; compare phases, not totals, with an unprofiled run.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from senorita.ids import shard_of

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
# Both workflows are planned with the same flags: a dry run printing nothing, target `all`.
DRY_RUN = ["-n", "--quiet", "all", "--", "all"]
JOB_COUNT = re.compile(r"^total\s+(\d+)")
SLURM_COMMANDS = ("sbatch", "sacct", "squeue", "sinfo", "scontrol", "scancel", "srun")
JOB_STARTED = re.compile(r"^(Job \d+: |(local)?rule \w+:)")  # a job's message, or its rule


@dataclass
class Plan:
    planned_s: float  # until the DAG was built and its job counts printed
    end_s: float  # until `snakemake -n` had listed every job, or a real run started its first
    cpu_s: float
    peak_gib: float
    jobs: int


def synthetic_catalogue(path: Path, n_videos: int, n_shards: int) -> None:
    ids = [f"pexels-{1_000_000 + i}" for i in range(n_videos)]
    df = pd.DataFrame(
        {
            "video_id": ids,
            "shard": [shard_of(v, n_shards) for v in ids],
            "path": [f"/data/pexels/{v}.mp4" for v in ids],
            "origin": "pexels",
            "licence": "Pexels License",
            "author": "someone",
            "author_url": None,
            "page_url": None,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)


PLAIN = """
SHARDS = [f"{{i:05d}}" for i in range({shards})]
rule all:
    input: expand("out/s{last}/{{shard}}.txt", shard=SHARDS)
rule s0:
    output: "out/s0/{{shard}}.txt"
    shell: "echo {{wildcards.shard}} > {{output}}"
for k in range(1, {stages}):
    rule:
        name: f"s{{k}}"
        input: f"out/s{{k - 1}}/{{{{shard}}}}.txt"
        output: f"out/s{{k}}/{{{{shard}}}}.txt"
        shell: "cat {{input}} > {{output}}"
"""


def plain_snakefile(path: Path, n_shards: int, jobs: int) -> None:
    """A plain workflow of about `jobs` jobs: a chain of one-line shell rules per shard."""
    stages = max(1, round(jobs / n_shards))
    path.write_text(PLAIN.format(shards=n_shards, stages=stages, last=stages - 1))


def run_plan(cmd: list[str], first_job: bool = False, path: Path | None = None) -> Plan:
    """Run one `snakemake` command, a dry run to its end or a real run until its first job
    starts (then the run is killed); its times, CPU, peak memory and job count. `path` goes
    first on PATH."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if path:
        env["PATH"] = f"{path}{os.pathsep}{env['PATH']}"
    t0 = time.perf_counter()
    planned, jobs, tail = float("nan"), -1, []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-40:], line]
            if jobs < 0 and (match := JOB_COUNT.match(line)):
                planned, jobs = time.perf_counter() - t0, int(match.group(1))
            elif first_job and jobs >= 0 and JOB_STARTED.match(line):
                os.killpg(proc.pid, signal.SIGKILL)  # the job too: same session
                break
    end = time.perf_counter() - t0
    if proc.returncode and not first_job:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{''.join(tail)}")
    if first_job and jobs < 0:
        raise SystemExit(f"{' '.join(cmd)} started no job:\n{''.join(tail)}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu_before
    if peak_kib <= before and not first_job:  # a real run's peak is not reported
        print(
            "warning: peak memory not above an earlier child's; reported value is a bound",
            file=sys.stderr,
        )
    return Plan(planned, end, cpu, peak_kib / 2**20, jobs)


def plan(
    workdir: Path, n_videos: int, n_shards: int, profile: Path | None = None, real: bool = False
) -> Plan:
    """`snakemake -n all` of this workflow in a fresh workdir, or with `real` a run of it until
    its first job starts.

    CPU seconds are reported beside wall time: on a busy machine, or one where the SLURM plugin's
    start-up probe (`scontrol show config`) waits on an absent controller, they differ.
    """
    workdir.mkdir(parents=True)
    (workdir / "videos").mkdir()
    config = {
        "shards": n_shards,
        "source": {"kind": "local", "local": {"path": str(workdir / "videos")}},
    }
    (workdir / "bench.yaml").write_text(yaml.safe_dump(config))
    synthetic_catalogue(workdir / "results/sources/catalogue.parquet", n_videos, n_shards)
    snakemake = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                 "--configfile", str(workdir / "bench.yaml")]  # fmt: skip
    if real:
        # The SLURM executor, as on a cluster (a local run builds no groups), with SLURM's
        # commands failing at once: no job reaches a real cluster, none waits on an absent one.
        fake = workdir / "no-slurm"
        fake.mkdir()
        for command in SLURM_COMMANDS:
            (fake / command).write_text("#!/bin/sh\nexit 1\n")
            (fake / command).chmod(0o755)
        cmd = [*snakemake, "--executor", "slurm", "--jobs", "100", "all"]
        return run_plan(cmd, first_job=True, path=fake)
    profiler = [sys.executable, "-m", "cProfile", "-o", str(profile)] if profile else []
    return run_plan([*profiler, *snakemake, *DRY_RUN])


def plan_plain(workdir: Path, n_shards: int, jobs: int) -> Plan:
    """`snakemake -n all` of the plain workflow with about `jobs` jobs."""
    workdir.mkdir(parents=True)
    plain_snakefile(workdir / "Snakefile", n_shards, jobs)
    return run_plan([str(SNAKEMAKE), "-s", str(workdir / "Snakefile"), "-d", str(workdir),
                     *DRY_RUN])  # fmt: skip


# Phases of a dry run, by the Snakemake function whose cumulative time is the phase's.
PHASES = {
    "start-up: import Snakemake and its plugins": ("snakemake/cli.py", "<module>"),
    "parse the Snakefile (includes, imports)": ("Snakefile", "<module>"),
    "build the DAG": ("snakemake/workflow.py", "_build_dag"),
    "  of which: create jobs (input functions)": ("snakemake/jobs.py", "new"),
    "  of which: find input files' producers": ("dag.py", "collect_potential_dependencies"),
    "dry run: list every job (messages, params)": ("scheduling/job_scheduler.py", "schedule"),
    "inspect.signature (per job and function)": ("inspect.py", "signature"),
}


def report_profile(profile: Path, top: int = 15) -> None:
    """Print a dry run's profile by phase, then the workflow's own functions."""
    import pstats

    stats = pstats.Stats(str(profile)).stats  # (file, line, name) -> (cc, calls, tt, cum, callers)
    total = max(cum for *_, cum, _ in stats.values())
    print(f"\nprofile {profile}: {total:.1f} s under cProfile")
    for phase, (suffix, name) in PHASES.items():
        cum = max(
            (v[3] for (f, _, n), v in stats.items() if f.endswith(suffix) and n == name),
            default=0.0,
        )
        print(f"  {phase:46} {cum:7.1f} s  {cum / total:5.0%}")
    own = [
        (v[3], v[1], f"{Path(f).relative_to(REPO)}:{line}({n})")
        for (f, line, n), v in stats.items()
        if f.startswith(str(REPO)) and (f.endswith(".smk") or f.endswith("Snakefile"))
        and n != "<module>"
    ]  # fmt: skip
    print(f"\n  the workflow's own functions (top {top} by cumulative seconds):")
    for cum, calls, where in sorted(own, reverse=True)[:top]:
        print(f"  {cum:7.2f} s {calls:8d} calls  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=390_000)
    parser.add_argument("--shards", type=int, default=2000)
    parser.add_argument("--baseline-shards", type=int, default=200)
    parser.add_argument("--profile", type=Path, help="profile one plan at --shards; no baseline")
    args = parser.parse_args()
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            run = plan(Path(tmp) / "run", args.videos, args.shards, args.profile)
        print(
            f"{args.shards} shards: {run.jobs} jobs, {run.end_s:.1f} s wall,"
            f" {run.cpu_s:.1f} s CPU (profiled)"
        )
        report_profile(args.profile.resolve())
        return
    with tempfile.TemporaryDirectory() as tmp:
        # Smallest first: ru_maxrss of children is a running maximum.
        base = plan(Path(tmp) / "base", args.videos, args.baseline_shards)
        plain_jobs = base.jobs * args.shards // args.baseline_shards
        plain = plan_plain(Path(tmp) / "plain", args.shards, plain_jobs)
        full = plan(Path(tmp) / "full", args.videos, args.shards)
        real = plan(Path(tmp) / "real", args.videos, args.shards, real=True)
    print(
        f"{'run':24} {'shards':>7} {'jobs':>7} {'planned s':>10} {'dry run s':>10}"
        f" {'first job s':>11} {'CPU s':>6} {'jobs/CPU s':>10} {'peak GiB':>9}"
    )
    for name, shards, run, first in [
        ("baseline", args.baseline_shards, base, None),
        ("plain Snakemake (floor)", args.shards, plain, None),
        ("recommended", args.shards, full, real),
    ]:
        print(
            f"{name:24} {shards:7d} {run.jobs:7d} {run.planned_s:10.1f} {run.end_s:10.1f}"
            f" {f'{first.end_s:.1f}' if first else '-':>11} {run.cpu_s:6.1f}"
            f" {run.jobs / run.cpu_s:10.0f} {run.peak_gib:9.2f}"
        )
    print(
        f"\nratio recommended/baseline: CPU time {full.cpu_s / base.cpu_s:.2f}x"
        f" for {full.jobs / base.jobs:.2f}x jobs"
    )
    per_job = (full.cpu_s / full.jobs) / (plain.cpu_s / plain.jobs)
    print(f"ratio recommended/plain Snakemake: {per_job:.2f}x the CPU per job (dry run)")
    ok = real.end_s < 60 and full.planned_s < 60 and full.peak_gib < 4
    print(
        f"goal (< 60 s and < 4 GiB at {args.shards} shards until the DAG is built and a real"
        f" run starts its first job): {'met' if ok else 'NOT met'}; a dry run (`snakemake -n`)"
        f" also lists every job: {full.end_s:.0f} s"
    )


if __name__ == "__main__":
    main()
