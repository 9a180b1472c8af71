"""Cohort throughput: N CW1 submissions graded locally with --jobs, then through Slurm.

Each submission is the instructor notebook (source/cw1/cw1.ipynb) with weights/cw1_model.pt,
as in tests/cw1. The same cohort is graded twice with the real command: `dlcourse grade
--jobs J` here, and `dlcourse grade --slurm --wait --max-running M` on a one-node Slurm cluster
started for the run (tests/services.py: this machine's CPUs, nothing shared with a real
cluster). Prints submissions per minute for each (wall clock from the command's start to its
marks, submission and merge included for Slurm), their ratio, that the marks agree, and the
load average: on a shared machine, quote the ratio of one run rather than either figure.

    flock /tmp/dlcourse-cpu.lock .venv/bin/python bench/cohort_bench.py            # N=4
    .venv/bin/python bench/cohort_bench.py --n 16 --jobs 8 --max-running 8       # quiet machine

Slurm needs root (slurmd starts jobs as their users) and Debian's slurmctld, slurmd and munge;
without them only the local figure is printed, with the reason.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import services  # noqa: E402 - tests/services.py, the one-node cluster of the Slurm tests


def make_cohort(folder: Path, n: int) -> list[Path]:
    notebook = ROOT / "source" / "cw1" / "cw1.ipynb"
    weights = ROOT / "weights" / "cw1_model.pt"
    if not weights.is_file():
        sys.exit(f"error: {weights} is missing: run `dlcourse train-reference cw1`")
    subs = []
    for i in range(n):
        sub = folder / f"student{i:03d}"
        sub.mkdir(parents=True)
        shutil.copy(notebook, sub / "cw1.ipynb")
        shutil.copy(weights, sub / "cw1_model.pt")
        subs.append(sub)
    return subs


def grade(subs: list[Path], out: Path, extra: list[str], env: dict | None = None) -> float:
    """Seconds of wall clock for one `dlcourse grade` of the cohort (failing loudly)."""
    cmd = [sys.executable, "-m", "dlcourse", "grade", *map(str, subs), "--assignment", "cw1",
           "--out", str(out), *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(
            f"error: {' '.join(cmd[:8])} ... failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return seconds


def marks(out: Path) -> dict[str, str]:
    with open(out / "marks.csv") as f:
        return {r["submission"]: r["score"] for r in csv.DictReader(f)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=4, help="submissions in the cohort (default 4)")
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="local --jobs (CPUs)")
    p.add_argument("--max-running", type=int, default=os.cpu_count(), help="Slurm tasks at once")
    p.add_argument("--keep", type=Path, help="keep the cohort and results here")
    args = p.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="dlcourse-cohort-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        subs = make_cohort(work / "submitted", args.n)
        load = os.getloadavg()
        rows = []
        local_s = grade(subs, work / "local", ["--jobs", str(args.jobs)])
        rows.append((f"local --jobs {args.jobs}", local_s))
        slurm_s = None
        try:
            with services.slurm_cluster() as cluster:
                extra = ["--slurm", "--wait", "--poll", "2", "--max-running", str(args.max_running)]
                slurm_s = grade(subs, work / "slurm", extra, cluster.env)
                rows.append((f"Slurm, 1 node of {cluster.cpus} CPUs, --max-running "
                             f"{args.max_running}", slurm_s))  # fmt: skip
        except services.Unavailable as exc:
            print(f"Slurm skipped: {exc}")
        print(f"\n{args.n} CW1 submissions; load average before: {load[0]:.2f} {load[1]:.2f} "
              f"{load[2]:.2f}, after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
        for name, seconds in rows:
            print(f"  {name:45s} {seconds:7.1f} s  {args.n / seconds * 60:6.2f} submissions/min")
        if slurm_s is not None:
            same = marks(work / "local") == marks(work / "slurm")
            print(f"  Slurm / local throughput: {local_s / slurm_s:.2f}; marks identical: {same}")
            if not same:
                return 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
