"""`dlcourse autograde cw1` (real nbgrader plus the isolated tests) on the instructor version and
on the untouched release: every automatic mark for the first, none for the second.

Smoke mode keeps nbgrader's execution of the notebook short; under NBGRADER_EXECUTION the
training cell loads the submitted weights, so nothing is trained either way.
"""

import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbgrader.api import Gradebook

from dlcourse import course, weights

SOURCE = course.ROOT / "source" / "cw1"


def _run(cmd, root, env):
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_autograde_gives_instructor_every_automatic_mark_and_blank_none(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(SOURCE, root / "source" / "cw1", ignore=shutil.ignore_patterns("*.pt"))
    shutil.copy(course.ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    db = f"sqlite:///{root}/gradebook.db"
    nbgrader = [sys.executable, "-m", "nbgrader"]
    env = {**os.environ, "DLCOURSE_SMOKE": "1"}
    _run([*nbgrader, "generate_assignment", "cw1", "--force", f"--db={db}"], root, env)
    submissions = {
        "instructor": root / "source" / "cw1" / "cw1.ipynb",
        "blank": root / "release" / "cw1" / "cw1.ipynb",
    }
    for student, nb in submissions.items():
        dest = root / "submitted" / student / "cw1"
        dest.mkdir(parents=True)
        shutil.copy(nb, dest / "cw1.ipynb")
        _run([*nbgrader, "db", "student", "add", student, f"--db={db}"], root, env)
    shutil.copy(weights.WEIGHTS_DIR / "cw1_model.pt", root / "submitted" / "instructor" / "cw1")
    _run([sys.executable, "-m", "dlcourse", "autograde", "cw1", "--root", str(root)], root, env)

    cells = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in nbformat.read(SOURCE / "cw1.ipynb", as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"]["solution"]
    }
    with Gradebook(db) as gb:
        for student in submissions:
            scores = {c: gb.find_grade(c, "cw1", "cw1", student).auto_score for c in cells}
            expected = cells if student == "instructor" else dict.fromkeys(cells, 0)
            assert scores == expected, student
