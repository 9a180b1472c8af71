"""Marks do not depend on how busy the grading machine is.

The instructor's CW1 submission is graded (every hidden test, `dlcourse grade` as staff run it)
with its processes pinned to one CPU beside four processes that spin on that same CPU: the
grader gets a fifth of a core. Every wall-clock limit is then a safety stop that can trip, and
a stopped test is graded again with longer limits; the marks must be the full 75, or the whole
submission "incomplete, regrade" with no mark exported. A lower mark is never acceptable.
"""

import csv
import os
import shutil
import subprocess
import sys

import pytest

from dlcourse import course, weights
from dlcourse.grading.results import GradingResults
from dlcourse.grading.sandbox import bwrap_works

SOURCE = course.ROOT / "source" / "cw1" / "cw1.ipynb"
HOGS = 4

pytestmark = [
    pytest.mark.slow,
    pytest.mark.stress,  # `make test-stress`: a whole CPU busy for minutes, too much for CI
    pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap"),
    pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)"),
]


def test_cw1_beside_four_busy_processes_on_its_cpu(tmp_path):
    sub = tmp_path / "instructor" / "cw1"
    sub.mkdir(parents=True)
    shutil.copy(SOURCE, sub / "cw1.ipynb")
    shutil.copy(weights.WEIGHTS_DIR / "cw1_model.pt", sub / "cw1_model.pt")
    cpu = str(max(os.sched_getaffinity(0)))
    pin = ["taskset", "-c", cpu]
    hogs = [subprocess.Popen([*pin, sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
    try:
        out = tmp_path / "grades"
        cmd = [*pin, sys.executable, "-m", "dlcourse", "grade", str(sub), "--assignment", "cw1",
               "--out", str(out)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert all(h.poll() is None for h in hogs), "a CPU hog stopped before grading ended"
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    graded = GradingResults.read(out / "instructor" / "results.json")
    row = next(csv.DictReader((out / "marks.csv").open()))
    if graded.incomplete:  # allowed: no mark at all, said so everywhere
        assert row["score"] == "incomplete" and graded.status.startswith("incomplete, regrade")
        return
    not_full = [t.name + ": " + t.output for t in graded.tests if t.score != t.max_score]
    assert (graded.score, graded.max_score) == (75, 75), not_full
    assert row["score"] == "75"
