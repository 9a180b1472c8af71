"""A wall-clock limit is a safety stop, never a mark: what it stops is graded again with longer
limits, and what it stops twice is "incomplete, regrade" with no total anywhere.

The fixtures wait without using the CPU (`time.sleep` in `Net.forward`), which is what a call
looks like on a machine too busy to run it: `slow` needs 15 s (the toy's call limit is 10 s),
`stalled` an hour. An endless loop that does use the CPU is the student's own (containment's
`hanging` case: an error, graded once more at most).
"""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from dlcourse.grading import autograde, runner
from dlcourse.grading.sandbox import bwrap_works
from dlcourse.grading.spec import Limits

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
SUBMISSIONS = FIXTURES / "submissions"
LOGITS = {"test_toy::test_logits_shape", "test_toy::test_logits_finite", "test_toy::test_accuracy"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap"),
]


def test_scaled_limits_keep_the_students_own_costs():
    limits = Limits(wall_s=60, call_s=10, memory_mb=1200).with_time_scale(4)
    assert (limits.wall_s, limits.call_s, limits.startup_s) == (240, 40, 480)
    assert (limits.cpu_limit, limits.call_cpu_limit, limits.memory_mb) == (60, 10, 1200)


def test_a_stopped_test_is_graded_again_with_longer_limits(toy_spec, tmp_path):
    graded = runner.grade_submission(SUBMISSIONS / "slow", toy_spec, tmp_path)
    assert (graded.score, graded.max_score) == (8, 8), graded.summary("slow")
    assert graded.status == "complete"
    assert any("graded again with 4x the wall-clock limits" in n for n in graded.notes)


@pytest.fixture(scope="module")
def stalled(once, toy_spec):
    """`dlcourse autograde` of a course with the stalled submission, then `nbgrader export`."""

    def build(root):
        shutil.copy(autograde.course.ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
        shutil.copytree(FIXTURES / "toy_source", root / "source")
        shutil.copytree(SUBMISSIONS / "stalled", root / "submitted" / "stalled" / "toy")
        autograde.autograde("toy", toy_spec, root, progress=False)
        export = root / "export.csv"
        subprocess.run(
            [sys.executable, "-m", "nbgrader", "export", f"--to={export}"],
            cwd=root, check=True, capture_output=True,
        )  # fmt: skip
        return {}

    root, _ = once("stalled", build)
    return root


def test_stopped_twice_is_incomplete_and_never_a_mark(stalled):
    out = stalled / "grades" / "toy"
    results = runner.GradingResults.read(out / "stalled" / "results.json")
    assert results.incomplete and results.status.startswith(
        "incomplete, regrade (3 tests stopped by a time limit)"
    )
    assert {t.name for t in results.tests if t.outcome == "incomplete"} == LOGITS
    marks = {r["submission"]: r for r in csv.DictReader((out / "marks.csv").open())}
    assert marks["stalled"]["score"] == "incomplete"
    assert all(marks["stalled"][t] == "incomplete" for t in LOGITS)
    cohort = {r["student"]: r for r in csv.DictReader((out / "marks_with_notebook.csv").open())}
    assert cohort["stalled"]["total"] == "incomplete, regrade"
    assert cohort["stalled"]["isolated"] == "incomplete"


def test_stopped_cells_wait_for_a_person_and_the_export_has_no_total(stalled):
    with Gradebook(f"sqlite:///{stalled / 'gradebook.db'}", "dl-course") as gb:
        hidden = gb.find_grade("toy_hidden", "toy", "toy", "stalled")
        add = gb.find_grade("toy_add_test", "toy", "toy", "stalled")
        assert hidden.needs_manual_grade and not add.needs_manual_grade
        assert add.auto_score == 1
    rows = list(csv.DictReader((stalled / "export.csv").open()))
    assert [(r["student_id"], r["score"], r["status"]) for r in rows] == [
        ("stalled", "", "not final: 1 cells need grading")
    ]
    autograded = (stalled / "autograded" / "stalled" / "toy" / "toy.ipynb").read_text()
    assert "waits for a person: incomplete, regrade" in autograded


def test_a_regrade_tries_again(stalled, toy_spec):
    folder = stalled / "submitted" / "stalled" / "toy"
    out = stalled / "grades" / "toy" / "stalled"
    assert runner.current_results(folder, out, sandbox=True) is None  # not reused as final
    assert runner.current_results(folder, out, sandbox=True, incomplete=True) is not None
