"""Every tutorial and quiz under real `nbgrader autograde`: the instructor version gets every
point, the untouched release none, and both notebooks run top to bottom in smoke mode.

All of a tutorial's points come from the isolated grader (grader_tests/<name>/), which nbgrader's
pipeline runs (nbgrader_config.py), so a notebook cannot change its own marks. One nbgrader run
executes both notebooks in the sandboxed kernel, in smoke mode; its outputs are the smoke-mode
check of CI (tests/test_notebooks.py leaves the tutorials to this file), so each notebook runs
once here, not three times:

- the instructor's notebook raises nothing but the isolated cells' marker and writes nothing to
  stderr;
- in the blank release every failure comes from a blank exercise and says why (its
  NotImplementedError, a NameError for what it would have defined, or a self-check's `FAIL ...`
  line), never a bare or unrelated exception (a KeyError in a later cell, say).
"""

import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from blank_exercises import unexplained_errors
from nbgrader.api import Gradebook

from dlcourse import course

TUTORIALS = [a for a in course.assignments() if a.tree == "tutorials"]
ISOLATED_MARKER = "IsolatedCellNotRun"


def nbgrader(root, *args):
    cmd = [
        sys.executable, "-m", "nbgrader", *args, f"--db=sqlite:///{root}/gradebook.db",
        "--CourseDirectory.source_directory=tutorials",
    ]  # fmt: skip
    env = {**os.environ, "DLCOURSE_SMOKE": "1"}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def errors(nb):
    return [
        (i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
        for o in c.get("outputs", []) if o.output_type == "error"
    ]  # fmt: skip


def stderr(nb):
    return [
        o.text for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.output_type == "stream" and o.name == "stderr" and "Warning" not in o.text
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("a", TUTORIALS, ids=[a.name for a in TUTORIALS])
def test_instructor_gets_every_point_and_blank_release_none(a, tmp_path):
    root = tmp_path / "course"
    shutil.copytree(a.source_dir, root / "tutorials" / a.name)
    shutil.copy(course.ROOT / "nbgrader_config.py", root)
    shutil.copytree(a.grader_tests, root / "grader_tests" / a.name)
    nb_name = a.notebooks[0].name
    submissions = {"instructor": a.source_dir, "blank": course.RELEASE / a.name}
    for student, folder in submissions.items():
        shutil.copytree(folder, root / "submitted" / student / a.name)
    nbgrader(root, "generate_assignment", a.name, "--force")
    with Gradebook(f"sqlite:///{root}/gradebook.db", "dl-course") as gb:
        for student in submissions:
            gb.add_student(student)
    nbgrader(root, "autograde", a.name, "--force")

    cells = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in nbformat.read(a.notebooks[0], as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert cells, f"{a.name} has no graded cells"
    with Gradebook(f"sqlite:///{root}/gradebook.db", "dl-course") as gb:
        for student in submissions:
            scores = {c: gb.find_grade(c, a.name, a.name, student).score for c in cells}
            expected = cells if student == "instructor" else dict.fromkeys(cells, 0)
            assert scores == expected, student

    ran = {
        s: nbformat.read(root / "autograded" / s / a.name / nb_name, as_version=4)
        for s in submissions
    }
    unexpected = [
        f"cell {i}: {e.ename}: {e.evalue}"
        for i, e in errors(ran["instructor"])
        if e.ename != ISOLATED_MARKER
    ]
    assert not unexpected, "instructor's notebook fails in smoke mode:\n" + "\n".join(unexpected)
    assert not stderr(ran["instructor"]), f"writes to stderr: {stderr(ran['instructor'])[:2]}"
    silent = [
        f"cell {i}: {e.ename} with no message"
        for i, e in errors(ran["blank"])
        if not e.evalue.strip() and e.ename != "NotImplementedError"
    ]
    assert not silent, "\n".join(silent)
    unrelated = unexplained_errors(ran["blank"], also_allowed=(ISOLATED_MARKER,))
    assert not unrelated, "the blank release fails for another reason:\n" + "\n".join(unrelated)
    failed_checks = [e.evalue for _, e in errors(ran["blank"]) if e.ename == "AssertionError"]
    assert all(v.startswith("FAIL ") for v in failed_checks), failed_checks
