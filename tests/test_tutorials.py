"""Every tutorial, quiz and introduction notebook under real `nbgrader autograde`: the
instructor version gets every point, the untouched release none, a hostile kernel nothing
either, and the notebooks run top to bottom in smoke mode.

All of their points come from the isolated grader (grader_tests/<name>/), which nbgrader's
pipeline runs (nbgrader_config.py), so a notebook cannot change its own marks. The hostile
student is the blank release with a first cell that does what a student's kernel can: delete
every environment variable (NBGRADER_EXECUTION included), make every check and the
isolated-cell marker pass, and swallow every exception so no test cell shows an error. One
nbgrader run executes the three notebooks in the sandboxed kernel, in smoke mode; its outputs
are the smoke-mode check of CI (tests/test_notebooks.py leaves these notebooks to this file), so
each notebook runs once here, not three times:

- the instructor's notebook raises nothing and writes nothing to stderr;
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
from attack_fixtures import KERNEL_BYPASS
from blank_exercises import unexplained_errors
from nbgrader.api import Gradebook

from dlcourse import course, release, weights
from dlcourse.grading import spec

NOTEBOOKS = [a for a in course.assignments() if a.tree in ("notebooks", "tutorials")]


def nbgrader(root, tree, *args):
    cmd = [
        sys.executable, "-m", "nbgrader", *args, f"--db=sqlite:///{root}/gradebook.db",
        f"--CourseDirectory.source_directory={tree}",
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


def _hostile(blank_folder, dest, nb_name):
    shutil.copytree(blank_folder, dest)
    nb = nbformat.read(dest / nb_name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(KERNEL_BYPASS))
    nbformat.write(nb, dest / nb_name)


@pytest.mark.slow
@pytest.mark.parametrize("a", NOTEBOOKS, ids=[a.name for a in NOTEBOOKS])
def test_instructor_gets_every_point_blank_and_hostile_none(a, tmp_path):
    root = tmp_path / "course"
    shutil.copytree(a.source_dir, root / a.tree / a.name)
    shutil.copy(course.ROOT / "nbgrader_config.py", root)
    shutil.copytree(a.grader_tests, root / "grader_tests" / a.name)
    nb_name = a.notebooks[0].name
    submitted = root / "submitted"
    shutil.copytree(a.source_dir, submitted / "instructor" / a.name)
    shutil.copytree(course.RELEASE / a.name, submitted / "blank" / a.name)
    _hostile(course.RELEASE / a.name, submitted / "hostile" / a.name, nb_name)
    for w in spec.load(a.name).weights:  # the notebook loads them when graded (Intro I)
        shutil.copy(weights.WEIGHTS_DIR / w, submitted / "instructor" / a.name / w)
    release.generate(a, root / "release", f"sqlite:///{root}/gradebook.db", root)  # in-process
    with Gradebook(f"sqlite:///{root}/gradebook.db", "dl-course") as gb:
        for student in ("instructor", "blank", "hostile"):
            gb.add_student(student)
    nbgrader(root, a.tree, "autograde", a.name, "--force")

    cells = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in nbformat.read(a.notebooks[0], as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert cells, f"{a.name} has no graded cells"
    with Gradebook(f"sqlite:///{root}/gradebook.db", "dl-course") as gb:
        for student in ("instructor", "blank", "hostile"):
            scores = {c: gb.find_grade(c, a.name, a.name, student).score for c in cells}
            expected = cells if student == "instructor" else dict.fromkeys(cells, 0)
            assert scores == expected, student

    ran = {
        s: nbformat.read(root / "autograded" / s / a.name / nb_name, as_version=4)
        for s in ("instructor", "blank")
    }
    unexpected = [f"cell {i}: {e.ename}: {e.evalue}" for i, e in errors(ran["instructor"])]
    assert not unexpected, "instructor's notebook fails in smoke mode:\n" + "\n".join(unexpected)
    assert not stderr(ran["instructor"]), f"writes to stderr: {stderr(ran['instructor'])[:2]}"
    silent = [
        f"cell {i}: {e.ename} with no message"
        for i, e in errors(ran["blank"])
        if not e.evalue.strip() and e.ename != "NotImplementedError"
    ]
    assert not silent, "\n".join(silent)
    unrelated = unexplained_errors(ran["blank"])
    assert not unrelated, "the blank release fails for another reason:\n" + "\n".join(unrelated)
    failed_checks = [e.evalue for _, e in errors(ran["blank"]) if e.ename == "AssertionError"]
    assert all(v.startswith("FAIL ") for v in failed_checks), failed_checks
