"""`dlcourse autograde A`: nbgrader autograde, then the isolated tests, merged in the gradebook.

nbgrader runs per student, so a submission that breaks it (a damaged notebook, a dead kernel)
costs that student a clear error and never the batch. The isolated tests' points are written
into the gradebook grade of the cell named by each test module's GRADE_CELL; a cell whose
tests could not all be computed is flagged for manual grading rather than given a silent 0.
Each step and each student is said as it starts and ends, and a step that stays quiet is
named again every few seconds (validate.Console): CW1's nbgrader run of one notebook takes
half a minute or more.

`require_assignment` is plain `nbgrader autograde`'s pre-convert hook (nbgrader_config.py):
an assignment missing from the gradebook is one line saying what to run, not nbgrader's
traceback for every student.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from dlcourse import course
from dlcourse.grading import cgroups, gradebook, results, runner, submission
from dlcourse.grading.results import GradingResults
from dlcourse.grading.sandbox import require_sandbox
from dlcourse.grading.spec import Spec

GLOB_CHARACTERS = "*?[]"  # nbgrader's --student is a glob pattern
FEEDBACK_MB = 2048  # nbgrader generate_feedback for one student (it parses and renders)
NBGRADER_PIDS = 256
# runner.grade_many's signature: (folders, spec, out, jobs, force, sandbox, progress) -> results;
# progress is a bar (True), nothing (False), or a function told each submission as it is graded
Progress = bool | Callable[[str, GradingResults], None]
IsolatedStep = Callable[
    [list[Path], Spec, Path, int, bool, bool, Progress], dict[str, GradingResults]
]


@dataclass
class StudentReport:
    student: str
    nbgrader_ok: bool = False
    cell_notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    isolated: GradingResults | None = None
    total: float | None = None
    max_total: float | None = None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def source_tree(root: Path, assignment: str) -> str:
    """The folder of `root` (notebooks/, tutorials/ or source/) that holds the assignment."""
    for tree in course.SOURCE_TREES:
        if any((root / tree / assignment).glob("*.ipynb")):
            return tree
    raise ValueError(
        f"no notebook for {assignment!r} under {root}/{{{','.join(course.SOURCE_TREES)}}}"
    )


def nbgrader(
    root: Path, args: list[str], tree: str, db_url: str, memory_mb: int | None = None
) -> subprocess.CompletedProcess:
    """Run one nbgrader command on the course at `root` (its nbgrader_config.py applies), in
    a box of `memory_mb` where cgroups allow (a notebook is parsed and rendered there)."""
    cmd = [
        sys.executable, "-m", "nbgrader", *args,
        f"--CourseDirectory.root={root}", f"--CourseDirectory.source_directory={tree}",
        f"--CourseDirectory.db_url={db_url}",
    ]  # fmt: skip
    if memory_mb is None or cgroups.hierarchy() is None:
        return subprocess.run(cmd, cwd=root, env=_env(), capture_output=True, text=True)
    box = cgroups.Box(memory_mb * 2**20, NBGRADER_PIDS, who="nbgrader")
    try:
        proc = subprocess.run(
            cmd, cwd=root, env=_env(), capture_output=True, text=True, preexec_fn=box.join
        )
        if died := box.describe_death():
            proc.stderr += f"\nRuntimeError: nbgrader {args[0]} was stopped: {died}\n"
        return proc
    finally:
        box.close()


def _last_error(proc: subprocess.CompletedProcess) -> str:
    """The most telling line of a failed nbgrader run: its exception, else its last ERROR."""
    lines = (proc.stdout + proc.stderr).splitlines()
    exc = [ln.strip() for ln in lines if re.match(r"\s*[\w.]+(Error|Exception): ", ln)]
    errs = [ln.strip() for ln in lines if "ERROR" in ln]
    return (exc or errs or lines or ["no output"])[-1][:400]


def course_id(root: Path) -> str:
    """The course id set in the course's nbgrader_config.py (the gradebook is keyed by it)."""
    from traitlets.config.loader import PyFileConfigLoader

    if not (root / "nbgrader_config.py").is_file():
        return "default_course"
    cfg = PyFileConfigLoader("nbgrader_config.py", str(root)).load_config()
    return cfg.CourseDirectory.get("course_id", "default_course")


def ensure_in_gradebook(
    root: Path, assignment: str, tree: str, db_url: str, say: Callable[[str], Any] = print
) -> None:
    """Record the assignment's cells in the gradebook (generate_assignment into a scratch dir)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id(root)) as gb:
        try:
            gb.find_assignment(assignment)
            return
        except MissingEntry:
            pass
    say(f"recording {assignment} in the gradebook (nbgrader generate_assignment)")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "generate_assignment",
            assignment,
            "--force",
            f"--CourseDirectory.release_directory={tmp}",
        ]
        proc = nbgrader(root, args, tree, db_url)
    if proc.returncode:
        raise RuntimeError(f"nbgrader generate_assignment {assignment} failed: {_last_error(proc)}")


def generate_command(root: Path, assignment: str) -> str:
    """The nbgrader command that records `assignment` in the gradebook (README: Teaching
    assistants): --force, since without it nbgrader skips an assignment whose release/ folder
    exists and records nothing; the source folder named where it is not source/."""
    cmd = f"nbgrader generate_assignment {assignment} --force"
    try:
        tree = source_tree(root, assignment)
    except ValueError:
        return cmd
    return cmd if tree == "source" else f"{cmd} --CourseDirectory.source_directory={tree}"


def require_assignment(assignment: str, student: str, notebooks: list[str]) -> None:
    """nbgrader autograde's pre-convert hook: stop with one line when the assignment is not in
    the gradebook (nbgrader would print a traceback per student: "No assignment with ID")."""
    from nbgrader.api import Gradebook, MissingEntry
    from traitlets.config import Application

    app = Application.instance() if Application.initialized() else None
    coursedir = getattr(app, "coursedir", None)
    if coursedir is None or not assignment or any(c in assignment for c in GLOB_CHARACTERS):
        return
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        try:
            gb.find_assignment(assignment)
            return
        except MissingEntry:
            pass
    app.log.error(
        "%s is not in the gradebook (%s): record it first with `%s`, then autograde again",
        assignment, gradebook.shown(coursedir.db_url),
        generate_command(Path(coursedir.root), assignment),
    )  # fmt: skip
    sys.exit(1)  # past nbgrader's per-student handler, which prints a traceback


def cell_problems(notebook: Path, expected: list[str]) -> list[str]:
    """Duplicated and missing nbgrader cells, reported to the student (nbgrader repairs both)."""
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        return [f"{notebook.name} is not a readable notebook ({exc})"]
    seen: dict[str, int] = {}
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid:
            seen[gid] = seen.get(gid, 0) + 1
    notes = [
        f"cell {g} appears {n} times; only the last copy was graded"
        for g, n in seen.items()
        if n > 1
    ]
    return notes + [
        f"cell {g} was missing; nbgrader restored it" for g in expected if g not in seen
    ]


def folder_problems(sub: Path, student: str, spec: Spec) -> list[str]:
    """Why submitted/<student>/<assignment> cannot be graded at all ([] when it can)."""
    where = f"submitted/{student}/{spec.name}"
    if student != sub.parent.name:
        return [f"submitted/{student}: the folder name is not valid UTF-8; rename it"]
    if any(c in student for c in GLOB_CHARACTERS):
        return [
            f"submitted/{student}: the folder name holds a wildcard character (* ? [ ]), which "
            "nbgrader would read as a pattern and autograde other students; rename it"
        ]
    if sub.is_symlink() or not sub.is_dir():
        return [f"{where} is not a folder"]
    return submission.problems(sub, spec.notebook)  # weights: the isolated grader's own check


def intake(
    root: Path, assignment: str, spec: Spec
) -> tuple[dict[str, StudentReport], dict[str, Path]]:
    """A report per submitted/<student>/<assignment>/ and the folders fit to be graded.

    A folder with links or special files, an unreadable name or an oversized notebook gets
    its reason here and is never handed to the graders; one without a notebook still has its
    weights marked by the isolated grader.
    """
    reports: dict[str, StudentReport] = {}
    folders: dict[str, Path] = {}
    for sub in sorted((root / "submitted").glob(f"*/{assignment}")):
        student = submission.display_name(sub.parent.name)
        rep = reports[student] = StudentReport(student)
        rep.errors += folder_problems(sub, student, spec)
        if rep.errors:
            continue
        folders[student] = sub
        if not (sub / spec.notebook).is_file():
            rep.errors.append(f"missing {spec.notebook}: nothing for nbgrader to grade")
    return reports, folders


def expected_cells(root: Path, tree: str, assignment: str, spec: Spec) -> list[str]:
    source_nb = root / tree / assignment / spec.notebook
    return [
        c.metadata["nbgrader"]["grade_id"]
        for c in nbformat.read(source_nb, as_version=4).cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    ]


def is_current(ctx: Course, student: str) -> bool:
    """Whether nbgrader's grades for `student` are up to date: autograded after the isolated
    results were last written. A changed submission is graded again, and a flag found later
    (shared weights) rewrites its results.json, so either makes nbgrader run again and merge
    the new isolated results into the gradebook."""
    autograded = ctx.root / "autograded" / student / ctx.assignment / ctx.spec.notebook
    isolated = ctx.root / "grades" / ctx.assignment / student / "results.json"
    if not autograded.is_file():
        return False
    return not isolated.is_file() or autograded.stat().st_mtime >= isolated.stat().st_mtime


def run_nbgrader(ctx: Course, rep: StudentReport, force: bool, sandbox: bool) -> None:
    """nbgrader autograde for one student: the sandboxed kernel and the isolated tests' merge
    happen inside nbgrader's pipeline (nbgrader_config.py), exactly as for a TA's plain run."""
    if is_current(ctx, rep.student) and not force:
        rep.nbgrader_ok = True
        return
    args = ["autograde", ctx.assignment, f"--student={rep.student}", "--force"]
    args += [
        f"--IsolatedGrades.tests_dir={ctx.spec.tests_dir}",
        "--IsolatedGrades.just_graded=True",
    ]
    if not sandbox:
        args += ["--SandboxedExecute.unsandboxed=True", "--IsolatedGrades.unsandboxed=True"]
    proc = nbgrader(ctx.root, args, ctx.tree, ctx.db_url)
    rep.nbgrader_ok = proc.returncode == 0
    if not rep.nbgrader_ok:
        rep.errors.append(f"nbgrader autograde failed: {_last_error(proc)}")


def write_feedback(ctx: Course, rep: StudentReport) -> None:
    """nbgrader generate_feedback for one student: nbgrader's annotated notebook without hidden
    tests, report.html with the whole mark and isolated_tests.txt (feedback.WriteReport)."""
    args = ["generate_feedback", ctx.assignment, f"--student={rep.student}", "--force"]
    proc = nbgrader(ctx.root, args, ctx.tree, ctx.db_url, memory_mb=FEEDBACK_MB)
    if proc.returncode:
        rep.errors.append(f"nbgrader generate_feedback failed: {_last_error(proc)}")


@dataclass(frozen=True)
class Course:
    """One autograde run's fixed facts: where the course is and what is graded."""

    root: Path
    assignment: str
    spec: Spec
    tree: str
    db_url: str
    course_id: str

    @property
    def out(self) -> Path:
        """grades/<assignment>/: the isolated results, the CSVs."""
        return self.root / "grades" / self.assignment


class _Silent:
    """A console that prints nothing (progress=False: the Slurm merge job, tests)."""

    def say(self, text: str, doing: str = "") -> None:
        pass

    def close(self) -> None:
        pass


def autograde(
    assignment: str,
    spec: Spec,
    root: Path = course.ROOT,
    db_url: str | None = None,
    jobs: int = 1,
    force: bool = False,
    sandbox: bool = True,
    progress: bool = True,
    isolated: IsolatedStep | None = None,
) -> list[StudentReport]:
    """Autograde every submitted/<student>/<assignment>/ of the course at `root`.

    `isolated` replaces the isolated tests' step (runner.grade_many): the Slurm merge job
    passes one that reads what the array tasks graded. A student it returns no results for
    is not run through nbgrader (nbgrader would grade the isolated tests here).
    """
    from dlcourse.grading.validate import Console

    if sandbox:
        require_sandbox()
    root = Path(root).resolve()
    os.environ["PATH"] = _env()["PATH"]  # nbgrader's Gradebook shells out to the venv's alembic
    db_url = gradebook.database_url(db_url, root)
    gradebook.check_reachable(db_url)  # a clear message, not a traceback, for a server that is down
    tree = source_tree(root, assignment)
    ctx = Course(root, assignment, spec, tree, db_url, course_id(root))
    console = Console() if progress else _Silent()
    try:
        return _autograde(ctx, jobs, force, sandbox, isolated or runner.grade_many, console)
    finally:
        console.close()


def _autograde(
    ctx: Course, jobs: int, force: bool, sandbox: bool, step: IsolatedStep, console: Any
) -> list[StudentReport]:
    """The steps, each said as it starts: intake, isolated tests, nbgrader per student,
    export, feedback per student."""
    t0 = time.monotonic()
    console.say(
        f"autograde {ctx.assignment} in {ctx.root} (gradebook {gradebook.shown(ctx.db_url)})",
        doing="reading the gradebook",
    )
    ensure_in_gradebook(ctx.root, ctx.assignment, ctx.tree, ctx.db_url,
                        lambda text: console.say(text, doing="recording it"))  # fmt: skip
    reports, folders = intake(ctx.root, ctx.assignment, ctx.spec)
    expected = expected_cells(ctx.root, ctx.tree, ctx.assignment, ctx.spec)
    notebooks = [s for s, f in folders.items() if (f / ctx.spec.notebook).is_file()]
    for student in notebooks:
        reports[student].cell_notes = cell_problems(folders[student] / ctx.spec.notebook, expected)
    for rep in reports.values():
        if rep.errors:
            console.say(f"  {rep.student}: {'; '.join(rep.errors)}")

    n = len(folders)  # isolated tests first, in parallel; nbgrader reuses their results
    console.say(f"[1/4] isolated tests: {n} submission{'s' * (n != 1)}, {max(1, jobs)} at a time",
                doing="isolated tests")  # fmt: skip

    def graded_one(student: str, graded: GradingResults) -> None:
        console.say(f"  {student}: {_isolated(graded)}/{graded.max_score:g} ({graded.status})",
                    doing="isolated tests")  # fmt: skip

    graded = step(list(folders.values()), ctx.spec, ctx.out, jobs, force, sandbox, graded_one)
    todo = [s for s in notebooks if s in graded]
    console.say(f"[2/4] nbgrader autograde: {len(todo)} notebooks, one at a time")
    for k, student in enumerate(todo, 1):  # a student that breaks nbgrader stops only itself
        _nbgrader_one(ctx, reports[student], force, sandbox, console, f"[{k}/{len(todo)}]")
    for student, rep in reports.items():
        rep.isolated = graded.get(student)
        if (t := gradebook.totals(ctx.db_url, ctx.course_id, ctx.assignment, student)) is not None:
            rep.total, rep.max_total = t

    console.say(f"[3/4] nbgrader export: {ctx.out / 'gradebook.csv'}", doing="nbgrader export")
    export = ["export", f"--CsvExportPlugin.to={ctx.out / 'gradebook.csv'}"]
    if (proc := nbgrader(ctx.root, export, ctx.tree, ctx.db_url)).returncode:
        print(f"warning: nbgrader export failed: {_last_error(proc)}", file=sys.stderr)
    ready = [r for r in reports.values() if r.nbgrader_ok]
    console.say(f"[4/4] feedback: {len(ready)} students, into {ctx.root / 'feedback'}")
    for k, rep in enumerate(ready, 1):
        console.say(f"  [{k}/{len(ready)}] {rep.student}", doing=f"feedback for {rep.student}")
        write_feedback(ctx, rep)
    write_marks(ctx.out / "marks_with_notebook.csv", list(reports.values()))
    console.say(f"done in {time.monotonic() - t0:.0f} s")
    return list(reports.values())


def _nbgrader_one(
    ctx: Course, rep: StudentReport, force: bool, sandbox: bool, console: Any, count: str
) -> None:
    """nbgrader autograde for one student, said as it starts and ends with its total."""
    started = time.monotonic()
    console.say(f"  {count} {rep.student} ...", doing=f"nbgrader autograde {rep.student}")
    run_nbgrader(ctx, rep, force, sandbox)
    t = gradebook.totals(ctx.db_url, ctx.course_id, ctx.assignment, rep.student)
    mark = "; ".join(rep.errors) or (f"{t[0]:g}/{t[1]:g} in the gradebook" if t else "-")
    console.say(f"  {count} {rep.student}: {mark} ({time.monotonic() - started:.0f} s)",
                doing="nbgrader")  # fmt: skip


def write_marks(path: Path, reports: list[StudentReport]) -> None:
    """The cohort table: gradebook total, isolated score, and what went wrong."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student", "total", "max_total", "isolated", "isolated_max", "status", "notes"])
    for r in sorted(reports, key=lambda r: r.student):
        iso = r.isolated
        status = "; ".join(r.errors) or (iso.status if iso else "not graded")
        total = _total(r, "{:g}")
        w.writerow([
            r.student, total, "" if r.max_total is None else f"{r.max_total:g}",
            _isolated(iso), f"{iso.max_score:g}" if iso else "",
            status, "; ".join([*r.cell_notes, *(iso.flags if iso else [])]),
        ])  # fmt: skip
    results.write_atomic(path, buf.getvalue())


def table(reports: list[StudentReport]) -> str:
    """The mark table printed at the end of a run."""
    rows = [("student", "notebook total", "isolated tests", "status")]
    for r in sorted(reports, key=lambda r: r.student):
        iso = r.isolated
        total = _total(r, "{:g}/" + f"{r.max_total or 0:g}")
        isolated = f"{_isolated(iso)}/{iso.max_score:g}" if iso else "error"
        status = "; ".join(r.errors) or (iso.status if iso else "not graded")
        rows.append((r.student, total, isolated, status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    )


def _total(r: StudentReport, fmt: str) -> str:
    """The gradebook total as a table shows it: never a number a safety stop left unfinished."""
    if r.isolated is not None and r.isolated.incomplete:
        return "incomplete, regrade"
    return "error" if r.total is None else fmt.format(r.total)


def _isolated(iso: GradingResults | None) -> str:
    if iso is None:
        return "error"
    return "incomplete" if iso.incomplete else f"{iso.score:g}"
