"""The embedded default end to end (`make demo`), with and without the warm worker.

`make demo` runs `senorita warm -- snakemake --cores N --scheduler greedy all`: one process
imports torch, transformers and diffusers, and every job's command forks from it. The baseline,
run in the same invocation, is the same `snakemake` command alone, where every job starts Python
and imports them itself. Each run is in a fresh folder; both make the same files (the SLURM test
compares a warm run with jobs that each ran in their own process). Goal: the warm run under 3
minutes on 2 cores.

    python benchmarks/demo_run.py [--cores 2] [--only warm|plain] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(workdir: Path, cores: int, warm: bool) -> tuple[float, int, float]:
    """Wall seconds, jobs run, and CPU seconds of the demo in ``workdir``."""
    workdir.mkdir(parents=True)
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += ["--cores", str(cores), "--scheduler", "greedy", "all"]  # as `make demo`
    if warm:
        cmd = [str(BIN / "senorita"), "warm", "--log", str(workdir / "worker.log"), "--", *cmd]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    after = os.times()
    if proc.returncode != 0:
        sys.exit(f"demo run failed ({'warm' if warm else 'plain'}):\n{proc.stderr[-4000:]}")
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", proc.stderr)
    cpu = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    return seconds, int(done[-1][1]) if done else -1, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--only", choices=["warm", "plain"])
    parser.add_argument("--keep", type=Path, help="run in DIR/plain and DIR/warm and keep them")
    args = parser.parse_args()
    kinds = [k for k in ("plain", "warm") if args.only in (None, k)]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        results = {k: run(root / k, args.cores, k == "warm") for k in kinds}
    print(f"{'run':8} {'jobs':>5} {'wall s':>8} {'CPU s':>8}")
    for kind, (sec, jobs, cpu) in results.items():
        print(f"{kind:8} {jobs:5d} {sec:8.1f} {cpu:8.1f}")
    if len(results) == 2:
        ratio = results["warm"][0] / results["plain"][0]
        print(f"\nratio warm/plain: wall {ratio:.2f}x")
    if "warm" in results:
        ok = results["warm"][0] < 180
        print(f"goal (warm run under 3 minutes): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
