"""DAG planning at Señorita scale: a dry run over a synthetic catalogue of 390,000 videos.

With static sharding the DAG has O(shards × tasks) jobs whatever the number of videos, so
planning cost follows the shard count. This plans `snakemake -n all` with every registered task,
at the full scale of 2,000 shards (the goal: under 60 s and 4 GB on 2 cores) and, as the
baseline measured in the same run, at 200 shards.

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
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from senorita.ids import shard_of

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


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


def plan(
    workdir: Path, n_videos: int, n_shards: int, profile: Path | None = None
) -> tuple[float, float, int, float]:
    """Seconds, peak GiB, job count and CPU seconds of `snakemake -n all` in a fresh workdir.

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
    cmd = [
        *([sys.executable, "-m", "cProfile", "-o", str(profile)] if profile else []),
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "bench.yaml"),
        "-n",
        "-q",
        "all",
    ]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu_before
    if peak_kib <= before:
        print(
            "warning: peak memory not above an earlier child's; reported value is a bound",
            file=sys.stderr,
        )
    total = re.search(r"^total\s+(\d+)", proc.stdout, re.M)
    return seconds, peak_kib / 2**20, int(total.group(1)) if total else -1, cpu


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
            sec, _, jobs, cpu = plan(Path(tmp) / "run", args.videos, args.shards, args.profile)
        print(f"{args.shards} shards: {jobs} jobs, {sec:.1f} s wall, {cpu:.1f} s CPU (profiled)")
        report_profile(args.profile.resolve())
        return
    with tempfile.TemporaryDirectory() as tmp:
        # Baseline first: ru_maxrss of children is a running maximum.
        base = plan(Path(tmp) / "base", args.videos, args.baseline_shards)
        full = plan(Path(tmp) / "full", args.videos, args.shards)
    print(
        f"{'run':14} {'videos':>8} {'shards':>7} {'jobs':>7} {'wall s':>7} {'CPU s':>6}"
        f" {'jobs/CPU s':>10} {'peak GiB':>9}"
    )
    for name, shards, (sec, gib, jobs, cpu) in [
        ("baseline", args.baseline_shards, base),
        ("recommended", args.shards, full),
    ]:
        print(
            f"{name:14} {args.videos:8d} {shards:7d} {jobs:7d} {sec:7.1f} {cpu:6.1f}"
            f" {jobs / cpu:10.0f} {gib:9.2f}"
        )
    print(
        f"\nratio recommended/baseline: CPU time {full[3] / base[3]:.2f}x"
        f" for {full[2] / base[2]:.2f}x jobs"
    )
    ok = full[0] < 60 and full[1] < 4
    print(f"goal (< 60 s and < 4 GiB at {args.shards} shards): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
