"""`dlcourse autograde` on a toy course: nbgrader per student, isolated points in the gradebook.

Duplicated and deleted nbgrader cells must not stop the batch, submissions stay unmodified,
and the HTML feedback shows no hidden test code.
"""

import csv
import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from dlcourse.grading import autograde
from dlcourse.grading.results import GradingResults
from dlcourse.grading.sandbox import bwrap_works

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
STUDENTS = ["good", "duplicated_cells", "deleted_cells", "missing_notebook"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap"),
]


@pytest.fixture(scope="module")
def course(once, toy_spec, hash_tree):
    def build(root):
        shutil.copy(autograde.course.ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
        shutil.copytree(FIXTURES / "toy_source", root / "source")
        for s in STUDENTS:
            shutil.copytree(FIXTURES / "submissions" / s, root / "submitted" / s / "toy")
        before = hash_tree(root / "submitted")
        db = f"sqlite:///{root / 'elsewhere.db'}"  # --db: any SQLAlchemy URL, e.g. PostgreSQL
        reports = autograde.autograde("toy", toy_spec, root, db, jobs=2, progress=False)
        return {
            "reports": [_to_json(r) for r in reports],  # shared between workers as JSON
            "before": before,
            "after": hash_tree(root / "submitted"),
        }

    root, r = once("autograde", build)
    reports = {d["student"]: _from_json(d) for d in r["reports"]}
    return root, reports, r["before"], r["after"]


def test_every_student_graded_with_gradebook_totals(course):
    _, reports, _, _ = course
    # notebook-level add test (1) + isolated cell toy_hidden (7)
    assert {s: (r.total, r.max_total) for s, r in reports.items()} == {
        "good": (8, 8),
        "duplicated_cells": (8, 8),
        "deleted_cells": (8, 8),
        "missing_notebook": (None, None),  # nbgrader has no notebook to grade
    }
    assert reports["missing_notebook"].errors == [
        "missing toy.ipynb: nothing for nbgrader to grade"
    ]


def test_damaged_cells_are_reported(course):
    _, reports, _, _ = course
    assert "cell toy_add_test appears 2 times; only the last copy was graded" in (
        reports["duplicated_cells"].cell_notes
    )
    assert reports["deleted_cells"].cell_notes == [
        "cell toy_add_test was missing; nbgrader restored it",
        "cell toy_hidden was missing; nbgrader restored it",
    ]


def test_missing_notebook_is_an_error_not_a_silent_zero(course):
    root, reports, _, _ = course
    r = reports["missing_notebook"]
    # every fixture here shares one toy.pt, so each is also flagged (test_gradebook_comment)
    assert r.isolated.status == "error (5 tests could not be computed) - FLAGGED"
    rows = {
        row["student"]: row
        for row in csv.DictReader((root / "grades" / "toy" / "marks_with_notebook.csv").open())
    }
    assert rows["missing_notebook"]["total"] == "error"
    assert rows["missing_notebook"]["status"] == "missing toy.ipynb: nothing for nbgrader to grade"
    assert rows["good"]["total"] == "8"


def test_submissions_unmodified(course):
    _, _, before, after = course
    assert before == after


def test_feedback_without_hidden_test_code(course):
    root, _, _, _ = course
    html = (root / "feedback" / "good" / "toy" / "toy.html").read_text()
    assert "Hidden tests for Net" in html  # the cell is shown with its explanation ...
    assert "IsolatedCellNotRun: toy_hidden: marked by the course's isolated grader" in html
    for secret in ("SECRET-ADD-CHECK", "BEGIN HIDDEN", "TEACHER", "probe_logits", "def test_"):
        assert secret not in html  # ... but no hidden test, in the notebook or the isolated ones
    summary = (root / "feedback" / "good" / "toy" / "isolated_tests.txt").read_text()
    assert summary.startswith("toy - good: 7/7 (complete - FLAGGED)")
    page = (root / "feedback" / "good" / "toy" / "report.html").read_text()
    assert "toy: feedback for good" in page and "<strong>7 / 7</strong>" in page
    for secret in ("SECRET-ADD-CHECK", "TEACHER", "probe_logits", "def test_"):
        assert secret not in page


def test_gradebook_csv_exported(course):
    root, _, _, _ = course
    assert (root / "elsewhere.db").is_file() and not (root / "gradebook.db").exists()
    rows = list(csv.DictReader((root / "grades" / "toy" / "gradebook.csv").open()))
    assert {r["student_id"] for r in rows} >= {"good", "deleted_cells"}


def test_gradebook_comment_says_sandboxed_and_flags_shared_weights(course):
    root, _, _, _ = course
    from dlcourse.grading import gradebook

    note = gradebook.comment(f"sqlite:///{root / 'elsewhere.db'}", "dl-course", _spec(), "good")
    assert note.startswith("Isolated grader: status complete - FLAGGED; sandboxed; FLAG: toy.pt")
    assert "identical to the weights submitted by deleted_cells, duplicated_cells" in note


def _to_json(r: autograde.StudentReport) -> dict:
    iso = r.isolated.to_gradescope() if r.isolated else None
    return dataclasses.asdict(r) | {"isolated": iso}


def _from_json(d: dict) -> autograde.StudentReport:
    iso = GradingResults.from_gradescope(d["isolated"]) if d["isolated"] else None
    return autograde.StudentReport(**{**d, "isolated": iso})


def _spec():
    from dlcourse.grading import spec

    return spec.load("toy", FIXTURES / "toy_tests")


def test_nbgrader_runs_again_when_the_isolated_results_are_newer(tmp_path):
    """A re-graded submission or a newly found flag rewrites results.json: nbgrader must then
    merge it into the gradebook again rather than keep the old grades."""
    ctx = autograde.Course(tmp_path, "toy", _spec(), "source", "sqlite://", "dl-course")
    notebook = tmp_path / "autograded" / "alice" / "toy" / "toy.ipynb"
    isolated = tmp_path / "grades" / "toy" / "alice" / "results.json"
    assert not autograde.is_current(ctx, "alice")  # never autograded
    for path in (notebook, isolated):
        path.parent.mkdir(parents=True)
        path.write_text("{}")
    os.utime(isolated, (1000, 1000))
    os.utime(notebook, (2000, 2000))
    assert autograde.is_current(ctx, "alice")
    os.utime(isolated, (3000, 3000))
    assert not autograde.is_current(ctx, "alice")
