"""`dlcourse validate` (dlcourse/grading/validate.py) as a student meets it: every assignment,
progress while it runs, each reason said once.

The toy assignment of tests/fixtures/grading has two @public tests; an assignment without any
(a tutorial's, here a folder with only an assignment.toml) gets the generic checks. The kit's
own copy of these paths runs in tests/test_student_journey.py.
"""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from dlcourse import course
from dlcourse.cli import main
from dlcourse.grading import runner, spec
from dlcourse.grading.sandbox import Worker, bwrap_works

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
TOY = ["--assignment", "toy", "--tests", str(FIXTURES / "toy_tests")]
# The sandbox where it works, as students get it; where it does not, the same checks run in the
# limited process, which is what this file is about.
SANDBOX = [] if bwrap_works() else ["--unsandboxed"]


def _untested_assignment(tmp_path: Path, code: str) -> tuple[Path, Path]:
    """(tests folder with only an assignment.toml, submission folder with a one-cell notebook)."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "assignment.toml").write_text('notebook = "t.ipynb"\n[limits]\nwall_s = 120\n')
    sub = tmp_path / "sub"
    sub.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, sub / "t.ipynb")
    return tests, sub


def test_a_missing_weight_file_is_said_once(capsys, tmp_path):
    junit = tmp_path / "report.xml"
    sub = FIXTURES / "submissions" / "missing_weights"
    assert main(["validate", str(sub), *TOY, *SANDBOX, "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert out.count("toy.pt is missing") == 1 and out.count("missing toy.pt") == 1, out
    assert "missing weight file" not in out  # the engine's own wording, once per test before
    assert "FAIL  test_toy::test_logits_shape: needs toy.pt (missing: see the files check)" in out
    assert "PASS  test_toy::test_add" in out  # a check that needs no weights still runs
    summary = out.split("NOT READY:")[1]
    assert summary.count("\n  - ") == 1, summary
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {
        "files: toy.ipynb, toy.pt", "notebook", "test_toy::test_add", "test_toy::test_logits_shape",
    }  # fmt: skip
    assert "missing weight file" not in ET.tostring(ET.parse(junit).getroot(), encoding="unicode")


def test_an_assignment_without_public_tests_gets_the_generic_checks(capsys, tmp_path):
    tests, sub = _untested_assignment(tmp_path, "import math\n\ndef area(r):\n    return 3 * r\n")
    junit = tmp_path / "report.xml"
    args = ["validate", str(sub), "--assignment", "t", "--tests", str(tests), *SANDBOX]
    assert main([*args, "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    for line in ("PASS  files: t.ipynb", "PASS  notebook",
                 "PASS  definitions load in the grader's process", f"OK: {sub} for t"):  # fmt: skip
        assert line in out, out
    cases = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert cases == ["files: t.ipynb", "notebook", "definitions load in the grader's process"]


def test_definitions_that_fail_to_load_are_not_ready(capsys, tmp_path):
    tests, sub = _untested_assignment(tmp_path, "import not_a_module_anywhere\n\nX = 1\n")
    args = ["validate", str(sub), "--assignment", "t", "--tests", str(tests), *SANDBOX]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL  definitions load in the grader's process" in out
    assert "ModuleNotFoundError" in out and "not_a_module_anywhere" in out


def test_a_broken_notebook_is_said_without_starting_anything(capsys, tmp_path):
    tests, sub = _untested_assignment(tmp_path, "X = 1\n")
    (sub / "t.ipynb").write_text("{ not json")
    args = ["validate", str(sub), "--assignment", "t", "--tests", str(tests), *SANDBOX]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL  notebook" in out and "t.ipynb is not a readable notebook" in out
    assert "definitions load" not in out and "starting" not in out


@pytest.mark.slow
def test_a_tutorial_of_the_course_validates(capsys):
    """A tutorial's hidden tests are not public: the repository's validate falls back to the
    generic checks (the kit has no test modules there at all: tests/test_student_journey.py)."""
    name = next(a.name for a in course.assignments() if a.tree == "tutorials")
    folder = course.RELEASE / name
    assert main(["validate", str(folder), "--assignment", name, *SANDBOX]) == 0
    out = capsys.readouterr().out
    assert "0 public checks" in out and "PASS  definitions load in the grader's process" in out
    assert "test_" not in out.replace(f"{name}.ipynb", "")  # no hidden test named


def test_an_unknown_assignment_names_the_known_ones(capsys):
    assert main(["validate", ".", "--assignment", "nope"]) == 2
    err = capsys.readouterr().err
    assert "validate knows no assignment 'nope'" in err
    assert "grader_tests/nope/assignment.toml is missing" in err
    assert "known: " in err and "cw1" in err and "t01_signals" in err


def test_the_grader_reports_each_test_as_it_finishes(tmp_path):
    events: list[dict] = []
    toy = spec.load("toy", FIXTURES / "toy_tests")
    graded = runner.grade_submission(
        FIXTURES / "submissions" / "good", toy, tmp_path, bwrap_works(), public_only=True,
        progress=events.append,
    )  # fmt: skip
    names = [t.name for t in graded.tests]
    assert events == [
        {"collected": 2},
        *(e for t in graded.tests
          for e in ({"start": t.name}, {"test": t.name, "outcome": t.outcome, "output": ""})),
    ], json.dumps(events)  # fmt: skip
    assert names == ["test_toy::test_add", "test_toy::test_logits_shape"]
    assert not list(tmp_path.glob(".progress*"))


def test_no_sandbox_is_not_blamed_on_a_flag_nobody_passed(tmp_path):
    """`validate` runs without bubblewrap where there is none: the note must not say the
    student passed --unsandboxed."""
    note = Worker(tmp_path, spec.Limits(), sandbox=False).note
    assert "NOT SANDBOXED" in note and "--unsandboxed" not in note


def test_what_the_grader_refuses_is_said_before_anything_runs(capsys, tmp_path):
    tests, sub = _untested_assignment(tmp_path, "X = 1\n")
    (sub / "elsewhere").symlink_to("/etc/passwd")
    args = ["validate", str(sub), "--assignment", "t", "--tests", str(tests), *SANDBOX]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL  submission can be graded" in out and "elsewhere" in out
    assert "PASS" not in out and "starting" not in out
