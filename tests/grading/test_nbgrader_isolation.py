"""Plain `nbgrader autograde` (what TAs type) runs each student's kernel in the sandbox.

A hostile student who knows the course's real path tries what worked before: read the hidden
tests and the solution, write into the gradebook and another student's submission, copy the
instructor notebook into its own folder and leave a process behind to change the gradebook
after the run. A submission holding a symbolic link is refused, and the batch goes on.

The bypass student tries to take the marks instead: wrong code, a kernel that deletes its
environment (NBGRADER_EXECUTION too), makes every check pass and swallows every exception, and
a weight file that makes the isolated grader refuse the submission (a zip that claims 600 MB),
so that no isolated result would override what nbgrader's pass saw. It must score exactly what
an honest student with the same work and the same file scores.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from attack_fixtures import KERNEL_BYPASS, zip_bomb

from dlcourse.course import ROOT
from dlcourse.grading.sandbox import bwrap_works

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
SURVIVOR = "4242.5"  # `sleep 4242.5`: a process the hostile notebook leaves behind

HOSTILE = """
import json, shutil, subprocess
from pathlib import Path
root = Path({root!r})
seen = {{}}
for rel in ["gradebook.db", "grader_tests/toy/test_toy.py", "source/toy/toy.ipynb",
            "submitted/good/toy/toy.ipynb"]:
    try:
        (root / rel).read_bytes()
        seen[rel] = "read"
    except OSError:
        seen[rel] = "blocked"
    try:
        with open(root / rel, "ab") as f:
            f.write(b"PWNED")
        seen[rel + " (write)"] = "wrote"
    except OSError:
        seen[rel + " (write)"] = "blocked"
try:
    shutil.copy(root / "source/toy/toy.ipynb", root / "autograded/hostile/toy/stolen.ipynb")
    seen["copy"] = "copied"
except OSError:
    seen["copy"] = "blocked"
subprocess.Popen(["sleep", "{survivor}"], start_new_session=True)
subprocess.Popen(["sh", "-c", "sleep 3; echo PWNED >> {root}/gradebook.db"], start_new_session=True)
print("SEEN", json.dumps(seen))
"""

WRONG_ADD = ("return a + b", "return a - b")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap"),
]


@pytest.fixture(scope="module")
def course(tmp_path_factory, hash_tree):
    root = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(FIXTURES / "toy_source", root / "source")
    shutil.copytree(FIXTURES / "toy_tests", root / "grader_tests" / "toy")
    good = FIXTURES / "submissions" / "good"
    shutil.copytree(good, root / "submitted" / "good" / "toy")
    hostile = shutil.copytree(good, root / "submitted" / "hostile" / "toy")
    nb = nbformat.read(hostile / "toy.ipynb", as_version=4)
    code = HOSTILE.format(root=str(root), survivor=SURVIVOR)
    nb.cells.insert(2, nbformat.v4.new_code_cell(code))
    nbformat.write(nb, hostile / "toy.ipynb")
    for student, cells in (("bypass", [KERNEL_BYPASS]), ("honest_refused", [])):
        folder = shutil.copytree(good, root / "submitted" / student / "toy")
        nb = nbformat.read(folder / "toy.ipynb", as_version=4)
        add = next(c for c in nb.cells if WRONG_ADD[0] in c.source)
        add.source = add.source.replace(*WRONG_ADD)
        nb.cells[1:1] = [nbformat.v4.new_code_cell(c) for c in cells]
        nbformat.write(nb, folder / "toy.ipynb")
        zip_bomb(folder / "toy.pt", 600)
    linked = shutil.copytree(good, root / "submitted" / "linked" / "toy")
    (linked / "toy.pt").unlink()
    (linked / "toy.pt").symlink_to(root / "submitted" / "good" / "toy" / "toy.pt")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    nbg = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbg, "generate_assignment", "toy", "--force"], cwd=root, env=env, check=True)
    guarded = {d: hash_tree(root / d) for d in ("submitted", "grader_tests", "source")}
    proc = subprocess.run(
        [*nbg, "autograde", "toy", "--force"], cwd=root, env=env, capture_output=True, text=True
    )
    time.sleep(5)  # what a surviving process would have written by now
    return root, proc, guarded, {d: hash_tree(root / d) for d in guarded}


def _score(root: Path, student: str) -> tuple[float, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "dl-course") as gb:
        sub = gb.find_submission("toy", student)
        return sub.score, sub.max_score


def _cells(root: Path, student: str) -> dict[str, tuple[float, bool]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "dl-course") as gb:
        return {
            cell: (g.score, g.needs_manual_grade)
            for cell in ("toy_add_test", "toy_hidden")
            for g in [gb.find_grade(cell, "toy", "toy", student)]
        }


def test_a_kernel_that_fakes_its_passes_gains_nothing(course):
    root = course[0]
    # Before: 7/7 for the bypass (its kernel passed every cell, the isolated grader refused the
    # submission and overrode nothing). Now nbgrader's pass gives a test cell nothing, and the
    # refused submission's cells wait for a person: 0, needing a grade, exactly as the honest one.
    waiting = {"toy_add_test": (0.0, True), "toy_hidden": (0.0, True)}
    assert _cells(root, "bypass") == _cells(root, "honest_refused") == waiting
    assert _score(root, "bypass") == _score(root, "honest_refused") == (0, 8)
    out = nbformat.read(root / "autograded" / "bypass" / "toy" / "toy.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert "waits for a person: error: submission refused: toy.pt unpacks to 600 MB" in text


def test_plain_nbgrader_writes_the_isolated_marks(course):
    root = course[0]
    assert _score(root, "good") == (8, 8)  # visible test 1 + isolated hidden tests 7
    assert (root / "grades" / "toy" / "good" / "results.json").is_file()


def test_hostile_kernel_sees_and_changes_nothing_of_the_course(course):
    root, _, guarded, after = course
    out = nbformat.read(root / "autograded" / "hostile" / "toy" / "toy.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    seen = json.loads(text.split("SEEN ", 1)[1].splitlines()[0])
    assert set(seen.values()) == {"blocked"}, seen
    assert not (root / "autograded" / "hostile" / "toy" / "stolen.ipynb").exists()
    assert after == guarded
    assert b"PWNED" not in (root / "gradebook.db").read_bytes()
    assert _score(root, "hostile") == (8, 8)  # its answers are right: it keeps its marks


def test_no_student_process_survives(course):
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and SURVIVOR in p.info["cmdline"]
    ]
    assert leftovers == []


def test_symlinked_submission_is_refused_and_the_batch_goes_on(course):
    root, proc = course[:2]
    log = proc.stdout + proc.stderr
    assert "toy.pt is a symbolic link; submit the file itself, not a link to it" in log
    assert not (root / "autograded" / "linked").exists()
    assert _score(root, "good") == (8, 8)
