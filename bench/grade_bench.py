"""What grading one submission costs next to a bare forward pass of its model, and where it goes.

Grades the reference of an assignment (instructor notebook + its weights: `pytorch_intro_1`,
weights/intro1_mlp.pt, or `cw1`, weights/cw1_model.pt) with the whole `dlcourse grade` pipeline
for one submission (`runner.grade_submission`: the pytest grader process, the sandboxed student
worker, every hidden test), 1 + --repeat times, each after a bare forward pass of the same model
over the same 10,000 private test images in this process (one thread, the probe's batches), so
both see the same neighbours. The cost is CPU seconds (user + system) of every process the
grading starts, sampled from /proc every 50 ms: wall-clock time on a shared machine says more
about the neighbours than about the grader. The first grading of a command also starts what the
next ones reuse (the grader processes' forkserver), so it is shown apart; the ratio that matters
for a cohort is the next ones' (their median) to the bare pass (its median). The cost is then
split into its parts, each measured on its own: the grader process's start and pytest's
collection, the private test set, the worker's start (bubblewrap + Python + torch), the
notebook's definitions, the evaluation call.

    flock /tmp/dlcourse-cpu.lock .venv/bin/python bench/grade_bench.py --assignment cw1

`--tree DIR` measures another copy of the course (an older commit's `git archive`, say) with this
script: `python bench/grade_bench.py --assignment cw1 --tree /tmp/before` runs it on DIR's
dlcourse, grader_tests and weights.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# This script again, with that tree's dlcourse first on the path. Only as the main script: the
# grader processes, forked by multiprocessing, import it again as __mp_main__.
if __name__ == "__main__" and "--tree" in sys.argv:
    i = sys.argv.index("--tree")
    tree = Path(sys.argv[i + 1]).resolve()
    rest = sys.argv[1:i] + sys.argv[i + 2 :]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    sys.exit(subprocess.call([sys.executable, str(Path(__file__).resolve()), *rest], env=env))

import psutil
import torch

from dlcourse import course, notebook, weights
from dlcourse.grading import heldout, runner, spec
from dlcourse.grading.sandbox import Worker
from dlcourse.grading.student import Student


@dataclass(frozen=True)
class Model:
    cls: str
    weights: str
    kwargs: dict = field(default_factory=dict)
    batch: int = 1000  # what the hidden test's probe uses


MODELS = {
    "pytorch_intro_1": Model("MLP", "intro1_mlp.pt", {"hidden": 256}, batch=1000),
    "cw1": Model("MyResNet", "cw1_model.pt", batch=500),
}


def probe_logits(ns, x, cls, file, kwargs, batch):
    model = ns.load_model(cls, file, **kwargs)
    with torch.no_grad():
        return torch.cat([model(xb) for xb in x.split(batch)])


class TreeCPU:
    """CPU seconds the processes below this one spend while a block runs, sampled from /proc.

    A worker killed at the end of grading is reaped by bubblewrap's own init, so its time never
    reaches getrusage(RUSAGE_CHILDREN); sampling sees it. Each process's last sample is at most
    one period old, when it was idle anyway (the grader waits, the worker is killed while idle).
    Processes that outlive the block (a forkserver) count only what they spent in it.
    """

    def __init__(self, period: float = 0.05) -> None:
        self.period, self.seen, self.before = period, {}, {}
        self._stop = threading.Event()

    def _sample(self) -> dict[tuple, tuple[str, float]]:
        found = {}
        for p in psutil.Process().children(recursive=True):
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    found[(p.pid, p.create_time())] = (" ".join(p.cmdline()), t.user + t.system)
            except psutil.Error:
                pass
        return found

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.seen.update(self._sample())
            self._stop.wait(self.period)

    def __enter__(self) -> TreeCPU:
        self.before = {k: cpu for k, (_, cpu) in self._sample().items()}
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seen.update(self._sample())

    def total(self, contains: str = "", excluding: str | None = None) -> float:
        return sum(
            cpu - self.before.get(k, 0.0)
            for k, (cmd, cpu) in self.seen.items()
            if contains in cmd and (excluding is None or excluding not in cmd)
        )


def child_cpu(cmd: list[str], **kwargs) -> float:
    """CPU seconds of a command that leaves no orphans (getrusage of the children)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, capture_output=True, **kwargs)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def bare_forward(src_nb: Path, m: Model, x: torch.Tensor) -> tuple[float, float]:
    """(CPU s, wall s) of the model's forward pass over x in this process, as the probe does."""
    ns = notebook.load_trusted(src_nb)
    model = ns[m.cls](**m.kwargs)
    model.load_state_dict(weights.load_state_dict(m.weights))
    model.eval()
    c0, t0 = time.process_time(), time.perf_counter()
    with torch.no_grad():
        torch.cat([model(xb) for xb in x.split(m.batch)])
    return time.process_time() - c0, time.perf_counter() - t0


def grade_once(sub: Path, s: spec.Spec, out: Path) -> dict[str, float]:
    """The whole pipeline for one submission: CPU of the grader and of the worker, wall, score."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    with TreeCPU() as cpu:
        graded = runner.grade_submission(sub, s, out)
    wall = time.perf_counter() - t0
    worker = cpu.total("dlcourse.grading.worker")
    return {
        "cpu": cpu.total(),
        "grader": cpu.total(excluding="dlcourse.grading.worker"),
        "worker": worker,
        "wall": wall,
        "score": graded.score,
        "max": graded.max_score,
        "sandboxed": float(bool(graded.sandboxed)),
    }


def parts(sub: Path, s: spec.Spec, m: Model, x: torch.Tensor, out: Path) -> dict[str, float]:
    """Each part of a grading on its own (CPU seconds)."""
    py = sys.executable
    found: dict[str, float] = {}
    collect = [
        str(s.tests_dir),
        "-p",
        "dlcourse.grading.plugin",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "--import-mode=importlib",
        "--rootdir",
        str(s.tests_dir),
        "-o",
        "addopts=",
        "--confcutdir",
        str(s.tests_dir),
        "-q",
        "--collect-only",
        "--assignment",
        s.name,
        "--submission",
        str(sub),
        "--results",
        str(out / "collect.json"),
    ]
    if hasattr(runner, "grader_process"):  # grader processes forked from a forkserver
        env = {**os.environ, **runner.GRADER_ENV}
        with TreeCPU() as cpu:  # the forkserver runs already: the gradings started it
            runner.grader_process.run_pytest(collect, env, out, 600)
        found["grader process: start + pytest collection"] = cpu.total()
    else:
        cmd = [py, "-m", "pytest", *collect]
        found["grader process: start + pytest collection"] = child_cpu(cmd, cwd=out)
    heldout._private_test_split.cache_clear()
    if hasattr(heldout, "public_test_split"):  # not in older trees
        heldout.public_test_split.cache_clear()
    c0 = time.process_time()
    heldout.private_test_split()
    found["private test set (grader)"] = time.process_time() - c0
    w = Worker(sub, s.limits)
    try:
        w.start()
        found["worker start (bubblewrap, Python, torch)"] = w.cpu_seconds()
        c0 = w.cpu_seconds()
        reply = w.request({"op": "load", "notebook": s.notebook})
        assert reply["ok"], reply
        found["notebook definitions (worker)"] = w.cpu_seconds() - c0
    finally:
        w.cleanup()
    st = Student(sub, s)
    try:
        kwargs = {"cls": m.cls, "file": m.weights, "kwargs": m.kwargs, "batch": m.batch}
        st.run(probe_logits, x=x[:4], **kwargs)  # model built, as the hidden tests do first
        st.run(probe_logits, x=x, **kwargs)
        found["evaluation of 10,000 images (worker)"] = st.last_cpu_s
    finally:
        st.close()
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assignment", choices=sorted(MODELS), default="pytorch_intro_1")
    p.add_argument("--repeat", type=int, default=2, help="gradings after the first to time")
    p.add_argument("--no-parts", action="store_true", help="skip the breakdown")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # what the worker uses (DLCOURSE_GRADE_THREADS)
    m = MODELS[args.assignment]
    s = spec.load(args.assignment)
    src_nb = course.get(args.assignment).source_dir / s.notebook
    x = heldout.private_test_split().x
    print(
        f"dlcourse from {Path(course.__file__).parent}; load average before "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp) / "reference"
        sub.mkdir()
        shutil.copy(src_nb, sub / s.notebook)
        shutil.copy(weights.WEIGHTS_DIR / m.weights, sub / m.weights)
        bare, graded = [], []
        for _ in range(args.repeat + 1):  # alternating, so both see the same neighbours
            bare.append(bare_forward(src_nb, m, x))
            graded.append(grade_once(sub, s, Path(tmp) / "out"))
        split = {} if args.no_parts else parts(sub, s, m, x, Path(tmp))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    first, rest = graded[0], graded[1:]  # the first also starts what a grading command reuses
    med = {k: statistics.median(g[k] for g in rest) for k in rest[0]}
    bare_cpu = statistics.median(b[0] for b in bare)
    bare_wall = statistics.median(b[1] for b in bare)
    print(
        f"{args.assignment} reference, {len(x)} private test images; sandboxed: "
        f"{bool(med['sandboxed'])}; score {med['score']:g}/{med['max']:g}"
    )
    label = f"bare forward pass (median of {len(bare)})"
    print(f"  {label:<34} {bare_cpu:7.2f} CPU s {bare_wall:7.2f} s wall")
    for label, g in (("first submission", first), (f"next ones (median of {len(rest)})", med)):
        print(
            f"  grade: {label:<27} {g['cpu']:7.2f} CPU s {g['wall']:7.2f} s wall "
            f"(grader {g['grader']:.2f}, worker {g['worker']:.2f}); "
            f"ratio to bare {g['cpu'] / bare_cpu:.2f} CPU, {g['wall'] / bare_wall:.2f} wall"
        )
    if split:
        print("  parts, each measured on its own (CPU s):")
        for what, cpu in split.items():
            print(f"    {what:<48} {cpu:6.2f}")
        other = med["cpu"] - sum(split.values())
        print(f"    {'the rest of a next one (tests, transfers...)':<48} {other:6.2f}")
        print("  (the first submission also starts what later ones reuse: the forkserver)")
    print(f"load average after {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
