"""Real `nbgrader autograde` on Introduction to PyTorch I: instructor version vs untouched release.

The isolated hidden-test cell (intro1_mlp_hidden) is scored by the grading engine, not by nbgrader;
its own tests live in tests/grading. Here nbgrader alone must give the instructor every
notebook-level point and the untouched release none at all.
"""

import shutil
import subprocess
import sys

import nbformat
import pytest
from nbgrader.api import Gradebook

from dlcourse import course

A = course.get("pytorch_intro_1")
ISOLATED = "intro1_mlp_hidden"


def nbgrader(root, *args):
    cmd = [
        sys.executable,
        "-m",
        "nbgrader",
        *args,
        f"--CourseDirectory.root={root}",
        f"--CourseDirectory.source_directory={A.tree}",
        f"--db=sqlite:///{root}/gradebook.db",
    ]
    proc = subprocess.run(cmd, cwd=course.ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_instructor_gets_every_notebook_point_and_release_gets_none(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(A.source_dir, root / A.tree / A.name)
    nb_name = A.notebooks[0].name
    submissions = {"instructor": A.source_dir / nb_name, "blank": course.RELEASE / A.name / nb_name}
    for student, nb in submissions.items():
        dest = root / "submitted" / student / A.name
        dest.mkdir(parents=True)
        shutil.copy(nb, dest / nb_name)
        shutil.copy(course.ROOT / "weights" / "intro1_mlp.pt", dest / "intro1_mlp.pt")
    nbgrader(root, "generate_assignment", A.name, "--force")
    for student in submissions:
        nbgrader(root, "db", "student", "add", student)
    nbgrader(root, "autograde", A.name, "--force")

    cells = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in nbformat.read(A.notebooks[0], as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    with Gradebook(f"sqlite:///{root}/gradebook.db") as gb:
        scores = {
            (student, cell): gb.find_grade(cell, A.notebooks[0].stem, A.name, student).auto_score
            for student in submissions
            for cell in cells
        }
    for cell, points in cells.items():
        assert scores["blank", cell] == 0, f"the untouched release scored on {cell}"
        expected = 0 if cell == ISOLATED else points
        assert scores["instructor", cell] == expected, f"instructor on {cell}"
