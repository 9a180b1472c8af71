"""`dlcourse autograde` (real nbgrader plus the isolated tests) on CW2's instructor version and on
its untouched release: every automatic mark for the first, none for the second. CW1 gets the
same check in tests/test_ta_journey.py, from the same autograde run as its formgrader journey.

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
from dlcourse.grading import spec


def _run(cmd, root, env):
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cw2"])
def test_autograde_gives_instructor_every_automatic_mark_and_blank_none(tmp_path, name):
    source = course.get(name).source_dir
    root = tmp_path / "course"
    shutil.copytree(source, root / "source" / name, ignore=shutil.ignore_patterns("*.pt"))
    shutil.copy(course.ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    db = f"sqlite:///{root}/gradebook.db"
    nbgrader = [sys.executable, "-m", "nbgrader"]
    env = {**os.environ, "DLCOURSE_SMOKE": "1"}
    _run([*nbgrader, "generate_assignment", name, "--force", f"--db={db}"], root, env)
    nb_name = f"{name}.ipynb"
    submissions = {
        "instructor": root / "source" / name / nb_name,
        "blank": root / "release" / name / nb_name,
    }
    for student, nb in submissions.items():
        dest = root / "submitted" / student / name
        dest.mkdir(parents=True)
        shutil.copy(nb, dest / nb_name)
        _run([*nbgrader, "db", "student", "add", student, f"--db={db}"], root, env)
    for w in spec.load(name).weights:
        shutil.copy(weights.WEIGHTS_DIR / w, root / "submitted" / "instructor" / name)
    _run([sys.executable, "-m", "dlcourse", "autograde", name, "--root", str(root)], root, env)

    cells = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in nbformat.read(source / nb_name, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"]["solution"]
    }
    with Gradebook(db) as gb:
        for student in submissions:
            scores = {c: gb.find_grade(c, name, name, student).auto_score for c in cells}
            expected = cells if student == "instructor" else dict.fromkeys(cells, 0)
            assert scores == expected, student
