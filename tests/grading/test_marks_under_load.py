"""Marks do not depend on how busy the grading machine is.

The instructor's CW1 submission is graded once on a quiet machine and once while two processes
spin on the CPU (as many as this machine's cores in CI), and must get the same marks from every
test. Only grader_tests/cw1/test_model.py runs (copied beside its assignment.toml into a
scratch tests folder): it holds the evaluation-cost test and the accuracy tiers, the marks a
slow machine could move; the layer tests of Part 1 use neither clocks nor the data.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlcourse import course, weights
from dlcourse.grading import runner, spec
from dlcourse.grading.results import GradingResults

SOURCE = course.ROOT / "source" / "cw1" / "cw1.ipynb"
HOGS = 2


def _instructor(folder: Path) -> Path:
    folder.mkdir()
    shutil.copy(SOURCE, folder / "cw1.ipynb")
    shutil.copy(weights.WEIGHTS_DIR / "cw1_model.pt", folder / "cw1_model.pt")
    return folder


def _model_tests_only(folder: Path) -> spec.Spec:
    folder.mkdir()
    for name in ("assignment.toml", "test_model.py"):
        shutil.copy(course.GRADER_TESTS / "cw1" / name, folder / name)
    return spec.load("cw1", folder)


def _marks(graded: GradingResults) -> dict[str, float]:
    return {t.name: t.score for t in graded.tests}


@pytest.mark.slow
def test_cw1_marks_are_the_same_on_a_busy_machine(tmp_path):
    sub = _instructor(tmp_path / "instructor")
    cw1 = _model_tests_only(tmp_path / "tests")
    quiet = runner.grade_submission(sub, cw1, tmp_path / "quiet")
    assert quiet.score == quiet.max_score == 25, quiet  # test_model.py's 25 points
    hogs = []
    try:
        for _ in range(HOGS):
            hogs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        busy = runner.grade_submission(sub, cw1, tmp_path / "busy")
        assert all(h.poll() is None for h in hogs), "a CPU hog stopped before grading ended"
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert _marks(busy) == _marks(quiet), [t.output for t in busy.tests if t.output]
