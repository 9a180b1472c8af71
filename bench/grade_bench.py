"""How long grading one submission takes, and where the time goes.

Grades the pytorch_intro_1 reference (instructor notebook + weights/intro1_mlp.pt) and splits
the time into: sandbox start (bubblewrap + Python + torch imports), notebook load (definitions
built in the worker), model evaluation (10,000 test images through the student's MLP,
transfer included), metric (accuracy, in the grader). It then times a bare forward pass of
the same model on the same images in this process with the same thread count, and reports
the ratio. Also times the whole `grade` pipeline (pytest grader process included).

    flock /tmp/dlcourse-cpu.lock .venv/bin/python bench/grade_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from dlcourse import course, data, metrics, notebook, weights
from dlcourse.grading import runner, spec
from dlcourse.grading.student import Student

ASSIGNMENT = "pytorch_intro_1"


def probe_logits(ns, x):
    model = ns.load_model("MLP", "intro1_mlp.pt", hidden=256)
    with torch.no_grad():
        return torch.cat([model(xb) for xb in x.split(1000)])


def one_grading(sub: Path, s: spec.Spec, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    st = Student(sub, s)
    try:
        st._ensure_started()
        t0 = time.perf_counter()
        logits = st.run(probe_logits, x=x)
        t_eval = time.perf_counter() - t0
        t0 = time.perf_counter()
        acc = metrics.accuracy(logits, y)
        t_metric = time.perf_counter() - t0
    finally:
        st.close()
    start = st.timings["start_s"]
    load = st.timings["load_s"]
    return {
        "sandbox start": start,
        "notebook load": load,
        "model evaluation": t_eval,
        "metric": t_metric,
        "total": start + load + t_eval + t_metric,
        "accuracy": acc,
        "sandboxed": float(st.worker.sandboxed),
    }


def bare_forward(src_nb: Path, x: torch.Tensor) -> float:
    ns = notebook.load_trusted(src_nb)
    model = ns["MLP"](hidden=256)
    model.load_state_dict(weights.load_state_dict("intro1_mlp.pt"))
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.cat([model(xb) for xb in x.split(1000)])
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # what the worker uses (DLCOURSE_GRADE_THREADS)
    s = spec.load(ASSIGNMENT)
    src_nb = course.get(ASSIGNMENT).source_dir / s.notebook
    test = data.load_fashion_mnist(smoke=False).test
    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp) / "reference"
        sub.mkdir()
        shutil.copy(src_nb, sub / s.notebook)
        shutil.copy(weights.WEIGHTS_DIR / "intro1_mlp.pt", sub / "intro1_mlp.pt")
        runs = [one_grading(sub, s, test.x, test.y) for _ in range(args.repeat)]
        bare = [bare_forward(src_nb, test.x) for _ in range(args.repeat)]
        t0 = time.perf_counter()
        graded = runner.grade_submission(sub, s, Path(tmp) / "out")
        pipeline = time.perf_counter() - t0
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    fwd = statistics.median(bare)
    print(f"{ASSIGNMENT} reference, {len(test.y)} test images, median of {args.repeat} runs")
    print(f"sandboxed: {bool(med['sandboxed'])}; accuracy {med['accuracy']:.4f}")
    for k in ("sandbox start", "notebook load", "model evaluation", "metric", "total"):
        print(f"  {k:<17} {med[k]:8.3f} s")
    print(f"  bare forward pass {fwd:8.3f} s (same model, images, batches, 1 thread)")
    print(f"  ratio total / bare forward:            {med['total'] / fwd:8.1f}")
    print(f"  ratio model evaluation / bare forward: {med['model evaluation'] / fwd:8.1f}")
    print(
        f"whole grade pipeline (pytest grader + 6 tests): {pipeline:.1f} s, "
        f"score {graded.score:g}/{graded.max_score:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
