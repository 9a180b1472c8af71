"""How long a notebook takes to run top to bottom: the figure each tutorial states at its top.

Run: .venv/bin/python bench/notebook_times.py t01_signals [more names] [--smoke] [--repeat N]

Each run executes the instructor notebook (solutions in) on a scratch copy of its folder with
nbclient, as a student's "Restart & Run All" would, in full mode unless --smoke. It prints the
median wall-clock time and the kernel's CPU time (user + system, all threads, from getrusage
of the finished kernel process), which moves less than wall time on a busy machine. Threads
are left at PyTorch's default, as on a student's laptop.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dlcourse import course  # noqa: E402


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(nb_path: Path, smoke: bool) -> tuple[float, float]:
    """(wall seconds, kernel CPU seconds) of one top-to-bottom run."""
    env_before = os.environ.get("DLCOURSE_SMOKE")
    os.environ["DLCOURSE_SMOKE"] = "1" if smoke else "0"
    os.environ.pop("NBGRADER_EXECUTION", None)
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        with tempfile.TemporaryDirectory(prefix="nbtime-") as tmp:
            work = Path(tmp) / nb_path.parent.name
            shutil.copytree(nb_path.parent, work)
            nb = nbformat.read(work / nb_path.name, as_version=4)
            cpu0, t0 = children_cpu_s(), time.perf_counter()
            client = NotebookClient(
                nb, timeout=-1, kernel_name="python3", resources={"metadata": {"path": str(work)}}
            )
            client.execute()
            wall = time.perf_counter() - t0
            return wall, children_cpu_s() - cpu0
    finally:
        if env_before is None:
            os.environ.pop("DLCOURSE_SMOKE", None)
        else:
            os.environ["DLCOURSE_SMOKE"] = env_before


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="+", help="assignments, e.g. t01_signals")
    p.add_argument("--smoke", action="store_true", help="DLCOURSE_SMOKE=1 (CI's mode)")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    mode = "smoke" if args.smoke else "full"
    print(f"{'notebook':28} {'mode':6} {'wall s (median)':>16} {'kernel CPU s':>13}  runs")
    for name in args.names:
        (nb_path,) = course.get(name).notebooks
        runs = [run_once(nb_path, args.smoke) for _ in range(args.repeat)]
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:28} {mode:6} {wall:16.1f} {cpu:13.1f}  {args.repeat}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
