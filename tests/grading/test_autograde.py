"""`dlcourse autograde` on a toy course: nbgrader per student, isolated points in the gradebook.

Duplicated and deleted nbgrader cells must not stop the batch, submissions stay unmodified,
and the HTML feedback shows no hidden test code and runs nothing a notebook put in it. A student
folder whose name nbgrader would read as a pattern (`star*`) is refused, and grades no one else.
"""

import csv
import dataclasses
import os
import re
import shutil
import stat
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from dlcourse.grading import autograde
from dlcourse.grading.results import GradingResults
from dlcourse.grading.sandbox import bwrap_works

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
STUDENTS = ["good", "duplicated_cells", "deleted_cells", "missing_notebook"]
XSS = "<img src=\"x\" onerror=\"document.title='PWNED'\"><script>document.title='PWNED'</script>"

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
        xss = shutil.copytree(FIXTURES / "submissions" / "good", root / "submitted" / "xss" / "toy")
        nb = nbformat.read(xss / "toy.ipynb", as_version=4)
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(f"My notes {XSS}"))
        nbformat.write(nb, xss / "toy.ipynb")
        shutil.copytree(FIXTURES / "submissions" / "good", root / "submitted" / "star*" / "toy")
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
    # the check cell toy_add_test (1) + the hidden-test cell toy_hidden (7), both isolated
    assert {s: (r.total, r.max_total) for s, r in reports.items()} == {
        "good": (8, 8),
        "duplicated_cells": (8, 8),
        "deleted_cells": (8, 8),
        "xss": (8, 8),
        "missing_notebook": (None, None),  # nbgrader has no notebook to grade
        "star*": (None, None),  # refused at intake
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
    assert r.isolated.status == "error (6 tests could not be computed) - FLAGGED"
    rows = {
        row["student"]: row
        for row in csv.DictReader((root / "grades" / "toy" / "marks_with_notebook.csv").open())
    }
    assert rows["missing_notebook"]["total"] == "error"
    assert rows["missing_notebook"]["status"] == "missing toy.ipynb: nothing for nbgrader to grade"
    assert rows["good"]["total"] == "8"


def test_a_wildcard_in_a_folder_name_is_refused_and_grades_no_one_else(course):
    root, reports, _, _ = course
    assert reports["star*"].errors == [
        "submitted/star*: the folder name holds a wildcard character (* ? [ ]), which nbgrader "
        "would read as a pattern and autograde other students; rename it"
    ]
    assert not (root / "autograded" / "star*").exists()
    assert reports["good"].total == 8


def test_submissions_unmodified(course):
    _, _, before, after = course
    assert before == after


def test_feedback_without_hidden_test_code(course):
    root, _, _, _ = course
    html = (root / "feedback" / "good" / "toy" / "toy.html").read_text()
    assert "Hidden tests for Net" in html  # the cell is shown with its explanation ...
    assert "Isolated grader: 7 of 7 points" in html  # ... and the isolated grader's verdict
    for secret in ("SECRET-ADD-CHECK", "BEGIN HIDDEN", "TEACHER", "probe_logits", "def test_"):
        assert secret not in html  # ... but no hidden test, in the notebook or the isolated ones
    summary = (root / "feedback" / "good" / "toy" / "isolated_tests.txt").read_text()
    assert summary.startswith("toy - good: 8/8 (complete)\n")
    page = (root / "feedback" / "good" / "toy" / "report.html").read_text()
    assert "toy: feedback for good" in page and "Your mark: <strong>8 / 8</strong>" in page
    for secret in ("SECRET-ADD-CHECK", "TEACHER", "probe_logits", "def test_"):
        assert secret not in page


def test_one_feedback_page_holds_the_whole_mark_per_cell(course):
    root, _, _, _ = course
    page = (root / "feedback" / "good" / "toy" / "report.html").read_text()
    rows = re.findall(r"<td>(In \[\d+\])</td>\s*<td>(\w+)</td>\s*<td>([^<]+)</td>", page)
    assert [(name, how) for _, name, how in rows] == [
        ("toy_add_test", "the hidden tests"), ("toy_hidden", "the hidden tests"),
    ]  # fmt: skip
    nb = nbformat.read(root / "autograded" / "good" / "toy" / "toy.ipynb", as_version=4)
    prompts = {c.metadata.get("nbgrader", {}).get("grade_id"): f"In [{c.execution_count}]"
               for c in nb.cells if c.cell_type == "code"}  # fmt: skip
    assert [where for where, _, _ in rows] == [prompts["toy_add_test"], prompts["toy_hidden"]]
    assert "Of it, from the hidden tests: <strong>8 / 8</strong>" in page


def test_staff_notes_reach_no_student_page_and_pages_are_readable(course):
    """FLAGs, the sandbox and the status are for staff (gradebook comment, CSVs, summary.txt);
    a student's pages are as readable as nbgrader's own feedback (0644)."""
    root, _, _, _ = course
    staff = (root / "grades" / "toy" / "good" / "summary.txt").read_text()
    assert "FLAG: toy.pt is identical" in staff and "sandbox" in staff
    folder = root / "feedback" / "good" / "toy"
    for page in ("toy.html", "report.html", "isolated_tests.txt"):
        text = (folder / page).read_text()
        for note in ("FLAG", "identical to the weights", "sandbox", "Isolated grader: status"):
            assert note not in text, (page, note)
        assert stat.S_IMODE((folder / page).stat().st_mode) == 0o644, page


class _Active(HTMLParser):
    """Elements that would run something: scripts, and event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        handlers = [name for name, _ in attrs if name.startswith("on")]
        if tag == "script" or handlers:
            self.found.append(f"<{tag} {' '.join(handlers)}>")


def test_feedback_runs_nothing_the_notebook_put_in_it(course):
    root, _, _, _ = course
    html = (root / "feedback" / "xss" / "toy" / "toy.html").read_text()
    assert "My notes" in html  # shown, as text
    active = _Active()
    active.feed(html)
    assert active.found == []
    head = html[: html.index("</head>")]
    assert 'http-equiv="Content-Security-Policy"' in head and "default-src 'none'" in head


def test_gradebook_csv_exported(course):
    root, _, _, _ = course
    assert (root / "elsewhere.db").is_file() and not (root / "gradebook.db").exists()
    rows = {
        r["student_id"]: r
        for r in csv.DictReader((root / "grades" / "toy" / "gradebook.csv").open())
    }
    assert set(rows) >= {"good", "deleted_cells"}
    assert (rows["good"]["score"], rows["good"]["status"]) == ("8.0", "final")


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
