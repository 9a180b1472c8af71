"""What the feedback reports cost: recording in the hidden tests, drawing each report.html, and
the cohort page, in CPU seconds of this process (wall clock on a shared machine says more about
the neighbours) with the wall clock beside it.

The measurements are the hidden tests' own (grader_tests/cw1/test_model.py, grader_tests/cw2/)
recorded from made-up model outputs of the real shapes (10,000 logits, 10,000 GAN samples), so
nothing is graded; then `report.write_reports` draws N copies as a cohort would.

    flock /tmp/dlcourse-cpu.lock .venv/bin/python bench/report_bench.py --copies 20
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dlcourse import course
from dlcourse.grading import heldout, measurements, report
from dlcourse.grading.measurements import Measurements
from dlcourse.grading.results import GradingResults, TestResult


def _hidden(assignment: str, module: str):
    spec = importlib.util.spec_from_file_location(
        module, course.GRADER_TESTS / assignment / f"{module}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of fn()."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


class _Decoder:
    def run(self, probe, **kwargs):
        if "x" in kwargs:
            return kwargs["x"]
        return torch.sigmoid(kwargs["z"] @ torch.ones(kwargs["z"].shape[1], 784))


def _cw1() -> tuple[Callable[[Measurements], None], list[str]]:
    """CW1's recording, for logits of the real shape (92% right), and its test names."""
    mod = _hidden("cw1", "test_model")
    y = heldout.private_test_split().y
    taken = torch.where(torch.arange(len(y)) < 800, (y + 1) % 10, y)
    logits = torch.nn.functional.one_hot(taken, 10) * 4.0 + torch.rand(len(y), 10)
    names = [f"test_model::{n}" for n in dir(mod) if n.startswith("test_")]
    return lambda m: mod._record(m, logits, 0.92), names


def _cw2() -> tuple[Callable[[Measurements], None], list[str]]:
    """CW2's recording (the probes answered here), for 10,000 samples, and its test names."""
    gan, vae = _hidden("cw2", "test_gan_quality"), _hidden("cw2", "test_vae_model")
    scores = {"fid": 24.5, "kid": 4.3, "coverage": 10, "histogram": [0.1] * 10}
    samples = torch.rand(10_000, 1, 32, 32) * 2 - 1

    def record(m: Measurements) -> None:
        gan._record(m, scores, samples)
        vae._record(m, 254.2)
        vae._record_recon(m, _Decoder())
        vae._record_samples(m, _Decoder(), torch.zeros(1, 16))

    names = [f"{mod.__name__}::{n}" for mod in (gan, vae) for n in dir(mod) if n[:5] == "test_"]
    return record, names


def _cohort(name: str, names: list[str], m: Measurements, out: Path, copies: int) -> dict:
    graded = GradingResults(
        name,
        "x",
        tests=[TestResult(t, "", 1, 1, "passed", "", False, None) for t in names],
        sandboxed=True,
    )
    cohort = {}
    for k in range(copies):
        sid = f"student{k:03d}"
        (out / sid).mkdir()
        graded.write(out / sid, sid)
        m.write(out / sid / measurements.FILE)
        cohort[sid] = graded
    return cohort


def _row(name: str, what: str, cpu: float, wall: float) -> None:
    print(f"{name:<10} {what:<36} {cpu:8.3f} {wall:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="submissions per cohort")
    args = parser.parse_args()
    report.cohort_page({}, "warm-up")  # jinja2 and the templates, once
    report._figure(1, 1)  # matplotlib's import, once
    print(f"{'assignment':<10} {'what':<36} {'CPU s':>8} {'wall s':>8}")
    for name, setup in (("cw1", _cw1), ("cw2", _cw2)):
        record, names = setup()
        m = Measurements()
        _row(name, "recording (in the grader process)", *_timed(lambda: record(m)))  # noqa: B023
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            cohort = _cohort(name, names, m, out, args.copies)
            per = [_timed(functools.partial(report.write_report, out / s, s)) for s in cohort]
            cpu, wall = (statistics.median(x) for x in zip(*per, strict=True))
            _row(name, "one report.html (median)", cpu, wall)
            page = functools.partial(report.cohort_page, cohort, name)
            _row(name, f"cohort.html of {args.copies}", *_timed(page))
            size = (out / "student000" / report.REPORT).stat().st_size
            print(f"{name:<10} {'size of one report.html':<36} {size / 1024:7.0f}K")


if __name__ == "__main__":
    main()
