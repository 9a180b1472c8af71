"""nbgrader's gradebook on a real PostgreSQL server (tests/services.py).

Built once per test run on a toy course: the plain `dlcourse autograde --db postgresql://...`
for one student (generate_assignment, autograde, nbgrader export), then two more students'
array tasks of `autograde --slurm` at once, as parallel processes (nbgrader autograde each, as
on Slurm), then its merge job. Every student's every grade must have arrived; sqlite stays the
default.
"""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import services

from dlcourse.grading import gradebook, spec
from dlcourse.grading.sandbox import bwrap_works

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
STUDENTS = ["ada", "bo", "cy"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap"),
]


def _toy_tests(folder: Path) -> Path:
    """The toy's hidden tests with more memory (see test_slurm._toy_tests)."""
    tests = folder / "toy_tests"
    shutil.copytree(FIXTURES / "toy_tests", tests)
    toml = tests / "assignment.toml"
    toml.write_text(toml.read_text().replace("memory_mb = 1200", "memory_mb = 2048"))
    return tests


@pytest.fixture(scope="module")
def course(once):
    def build(folder: Path) -> dict:
        try:
            with services.postgres_server() as pg:
                return _scenario(folder, pg)
        except services.Unavailable as exc:
            return {"skip": f"no PostgreSQL server here: {exc}"}

    _, r = once("postgres", build)
    if "skip" in r:
        pytest.skip(r["skip"])
    return r


def _scenario(folder: Path, pg: services.PostgresServer) -> dict:
    from dlcourse.grading import slurm

    url = pg.create_database("gradebook")  # plain postgresql://: psycopg2 is chosen for it
    tests = _toy_tests(folder)
    toy = spec.load("toy", tests)
    root = folder / "course"
    root.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "nbgrader_config.py", root)
    shutil.copytree(FIXTURES / "toy_source", root / "source")
    first, *others = STUDENTS
    shutil.copytree(FIXTURES / "submissions" / "good", root / "submitted" / first / "toy")
    r: dict = {"url": url}

    # The plain command first, for one student: generate_assignment, autograde, export.
    cmd = [sys.executable, "-m", "dlcourse", "autograde", "toy", "--root", str(root),
           "--db", url, "--tests", str(tests)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    r["cli"] = {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}
    r["export"] = _read(root / "grades" / "toy" / "gradebook.csv")
    r["sqlite_file"] = (root / "gradebook.db").exists()
    r["cells"] = _cells(gradebook.database_url(url, root))

    # Then the others' array tasks all at once. Their isolated results are the first
    # student's (same files, so current): the concurrent gradebook writes are under test.
    for s in others:
        shutil.copytree(root / "submitted" / first, root / "submitted" / s)
        shutil.copytree(root / "grades" / "toy" / first, root / "grades" / "toy" / s)
    target, ids = slurm.prepare_autograde(root, url, toy)
    r["nbgrader_in_tasks"] = target.nbgrader_in_tasks
    plan, _, _ = slurm.plan_run(toy, root / "grades" / "toy", ids, target)
    plan.array_job = "1"
    plan.write()
    r["tasks"] = plan.tasks
    task = [sys.executable, "-m", "dlcourse.grading.array_job", "task", str(plan.dir)]
    procs = [
        subprocess.Popen(
            [*task, "--index", str(i)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )  # fmt: skip
        for i in range(len(plan.tasks))
    ]  # all at once, as an array's tasks start
    r["task_rc"] = [p.wait(timeout=900) for p in procs]
    r["task_out"] = [p.stdout.read() for p in procs]
    r["after_tasks"] = _grades(target.db_url)

    merge = [sys.executable, "-m", "dlcourse.grading.array_job", "merge", str(plan.dir)]
    proc = subprocess.run(merge, capture_output=True, text=True, timeout=900)
    r["merge"] = {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}
    r["merged_marks"] = _read(root / "grades" / "toy" / "marks_with_notebook.csv")
    r["merged_export"] = _read(root / "grades" / "toy" / "gradebook.csv")
    r["after_merge"] = _grades(target.db_url)
    r["comment"] = gradebook.comment(target.db_url, "dl-course", toy, others[0])
    return r


def _read(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def _cells(db_url: str) -> list[str]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url, "dl-course") as gb:
        nb = gb.find_assignment("toy").notebooks[0]
        return sorted(c.name for c in nb.grade_cells)


def _grades(db_url: str) -> dict:
    """Every student's every cell score, read back from the server."""
    from nbgrader.api import Gradebook, MissingEntry

    found = {}
    with Gradebook(db_url, "dl-course") as gb:
        for s in STUDENTS:
            try:
                nb = gb.find_submission_notebook("toy", "toy", s)
            except MissingEntry:
                found[s] = None
                continue
            found[s] = {g.name: g.score for g in nb.grades}
    return found


def test_cli_autograde_generate_and_export_on_postgres(course):
    cli = course["cli"]
    assert cli["rc"] == 0, cli["out"][-2000:] + cli["err"][-2000:]
    assert course["url"].startswith("postgresql://")
    assert course["cells"] == ["toy_add_test", "toy_hidden"]  # generate_assignment's record
    assert [(r["student_id"], float(r["score"])) for r in course["export"]] == [("ada", 8.0)]
    assert not course["sqlite_file"]


def test_concurrent_autograde_processes_lose_no_grade(course):
    assert course["nbgrader_in_tasks"]  # a server database: nbgrader runs in the tasks
    assert course["tasks"] == [[s] for s in STUDENTS[1:]]  # ada is done: not submitted again
    assert course["task_rc"] == [0] * (len(STUDENTS) - 1), course["task_out"]
    every = {"toy_add_test": 1.0, "toy_hidden": 7.0}
    assert course["after_tasks"] == {s: every for s in STUDENTS}


def test_merge_job_writes_marks_and_export(course):
    assert course["merge"]["rc"] == 0, course["merge"]["out"][-2000:] + course["merge"]["err"]
    rows = {r["student"]: r["total"] for r in course["merged_marks"]}
    assert rows == {s: "8" for s in STUDENTS}
    exported = {r["student_id"]: float(r["score"]) for r in course["merged_export"]}
    assert exported == {s: 8.0 for s in STUDENTS}
    assert course["after_merge"] == course["after_tasks"]


def test_shared_weights_flag_reaches_the_gradebook(course):
    # every student submitted the same toy.pt: the merge found it after the tasks had merged
    others = ", ".join(s for s in STUDENTS if s != STUDENTS[1])
    assert f"FLAG: toy.pt is identical to the weights submitted by {others}" in course["comment"]


def test_sqlite_is_the_default(tmp_path):
    assert gradebook.database_url(None, tmp_path) == f"sqlite:///{tmp_path / 'gradebook.db'}"
    assert not gradebook.takes_concurrent_writers(gradebook.database_url(None, tmp_path))
    assert gradebook.database_url("postgresql://u@h/db", tmp_path).startswith("postgresql+psycopg2")


def test_unreachable_server_is_a_clear_error(tmp_path):
    url = f"postgresql://nobody:s3cret@/x?host={tmp_path}&port=1"
    with pytest.raises(ValueError, match="cannot open the gradebook .*Is the server running") as e:
        gradebook.check_reachable(gradebook.database_url(url, tmp_path))
    assert "s3cret" not in str(e.value)
