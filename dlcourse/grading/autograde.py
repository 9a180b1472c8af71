"""`dlcourse autograde A`: nbgrader autograde, then the isolated tests, merged in the gradebook.

nbgrader runs per student, so a submission that breaks it (a damaged notebook, a dead kernel)
costs that student a clear error and never the batch. The isolated tests' points are written
into the gradebook grade of the cell named by each test module's GRADE_CELL; a cell whose
tests could not all be computed is flagged for manual grading rather than given a silent 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from dlcourse import course
from dlcourse.grading import results, runner
from dlcourse.grading.feedback import FEEDBACK_PREPROCESSORS
from dlcourse.grading.spec import Spec


@dataclass
class StudentReport:
    student: str
    nbgrader_ok: bool = False
    cell_notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    isolated: dict[str, Any] | None = None
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


def nbgrader(root: Path, args: list[str], tree: str, db_url: str) -> subprocess.CompletedProcess:
    """Run one nbgrader command on the course at `root` (its nbgrader_config.py applies)."""
    cmd = [
        sys.executable, "-m", "nbgrader", *args,
        f"--CourseDirectory.root={root}", f"--CourseDirectory.source_directory={tree}",
        f"--CourseDirectory.db_url={db_url}",
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=root, env=_env(), capture_output=True, text=True)


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


def ensure_in_gradebook(root: Path, assignment: str, tree: str, db_url: str) -> None:
    """Record the assignment's cells in the gradebook (generate_assignment into a scratch dir)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id(root)) as gb:
        try:
            gb.find_assignment(assignment)
            return
        except MissingEntry:
            pass
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


def cell_problems(notebook: Path) -> list[str]:
    """Duplicated or missing-metadata nbgrader cells, reported to the student (nbgrader repairs)."""
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        return [f"{notebook.name} is not a readable notebook ({exc})"]
    seen: dict[str, int] = {}
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid:
            seen[gid] = seen.get(gid, 0) + 1
    return [
        f"cell {g} appears {n} times; only the last copy was graded"
        for g, n in seen.items()
        if n > 1
    ]


def repaired_copy(submission: Path, notebook: str, staging: Path) -> Path | None:
    """A copy of the submission whose notebook keeps only the last cell of each grade_id.

    nbgrader 0.9.6 would drop the metadata of earlier copies itself, then crash while restoring
    missing cells (KeyError 'grade_id'). The submission is never modified: the copy is graded.
    Returns the staging submitted-folder, or None when nothing needs repair.
    """
    path = submission / notebook
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - nbgrader reports an unreadable notebook itself
        return None
    seen: set[str] = set()
    repaired = False
    for cell in reversed(nb.cells):
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in seen:
            del cell.metadata["nbgrader"]
            repaired = True
        elif gid:
            seen.add(gid)
    if not repaired:
        return None
    copy = staging / submission.parent.name / submission.name
    shutil.copytree(submission, copy)
    nbformat.write(nb, copy / notebook)
    return staging


def missing_cells(notebook: Path, expected: list[str]) -> list[str]:
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception:  # noqa: BLE001 - cell_problems reports it
        return []
    have = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells}
    return [f"cell {g} was missing; nbgrader restored it" for g in expected if g not in have]


def merge(db_url: str, cid: str, spec: Spec, student: str, doc: dict[str, Any]) -> list[str]:
    """Write the isolated scores into the gradebook; returns problems (unknown cells...)."""
    from nbgrader.api import Gradebook, MissingEntry

    problems = []
    notebook_id = Path(spec.notebook).stem
    with Gradebook(db_url, cid) as gb:
        for cell, agg in doc["extra_data"]["grade_cells"].items():
            if cell is None:
                problems.append("tests without GRADE_CELL: their points are not in the gradebook")
                continue
            try:
                grade = gb.find_grade(cell, notebook_id, spec.name, student)
            except MissingEntry:
                problems.append(f"no gradebook cell {cell} in {notebook_id} for {student}")
                continue
            grade.auto_score = min(agg["score"], grade.max_score)
            grade.needs_manual_grade = bool(agg["errors"])
            if abs(agg["max_score"] - grade.max_score) > 1e-9:
                problems.append(
                    f"{cell} is worth {grade.max_score:g} in the notebook but its tests "
                    f"sum to {agg['max_score']:g}"
                )
        gb.db.commit()
    return problems


def totals(db_url: str, cid: str, assignment: str, student: str) -> tuple[float, float] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, cid) as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return None
        return sub.score, sub.max_score


def autograde(
    assignment: str,
    spec: Spec,
    root: Path = course.ROOT,
    db_url: str | None = None,
    jobs: int = 1,
    force: bool = False,
    sandbox: bool | None = None,
    progress: bool = True,
) -> list[StudentReport]:
    """Autograde every submitted/<student>/<assignment>/ of the course at `root`."""
    root = Path(root).resolve()
    os.environ["PATH"] = _env()["PATH"]  # nbgrader's Gradebook shells out to the venv's alembic
    db_url = db_url or f"sqlite:///{root / 'gradebook.db'}"
    tree = source_tree(root, assignment)
    cid = course_id(root)
    ensure_in_gradebook(root, assignment, tree, db_url)
    submitted = sorted(p for p in (root / "submitted").glob(f"*/{assignment}") if p.is_dir())
    reports = {p.parent.name: StudentReport(p.parent.name) for p in submitted}
    source_nb = root / tree / assignment / spec.notebook
    expected = [
        c.metadata["nbgrader"]["grade_id"]
        for c in nbformat.read(source_nb, as_version=4).cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    ]

    staging = Path(tempfile.mkdtemp(prefix="dlcourse-staging-"))
    for sub in submitted:  # one nbgrader process per student: a bad one stops only itself
        rep = reports[sub.parent.name]
        nb = sub / spec.notebook
        if not nb.is_file():
            rep.errors.append(f"missing {spec.notebook}: nothing for nbgrader to grade")
            continue
        rep.cell_notes = cell_problems(nb) + missing_cells(nb, expected)
        done = (root / "autograded" / rep.student / assignment / spec.notebook).is_file()
        if done and not force:
            rep.nbgrader_ok = True
            continue
        args = ["autograde", assignment, f"--student={rep.student}", "--force",
                "--OverwriteCells.add_missing_cells=True"]  # fmt: skip
        if (repaired := repaired_copy(sub, spec.notebook, staging)) is not None:
            args.append(f"--CourseDirectory.submitted_directory={repaired}")
        proc = nbgrader(root, args, tree, db_url)
        rep.nbgrader_ok = proc.returncode == 0
        if not rep.nbgrader_ok:
            rep.errors.append(f"nbgrader autograde failed: {_last_error(proc)}")

    shutil.rmtree(staging)
    out = root / "grades" / assignment
    docs = runner.grade_many(submitted, spec, out, jobs, force, sandbox, progress)
    for student, rep in reports.items():
        rep.isolated = docs.get(student)
        if rep.nbgrader_ok and rep.isolated is not None:
            rep.errors += merge(db_url, cid, spec, student, rep.isolated)
        if (t := totals(db_url, cid, assignment, student)) is not None:
            rep.total, rep.max_total = t

    proc = nbgrader(root, ["export", f"--CsvExportPlugin.to={out / 'gradebook.csv'}"], tree, db_url)
    if proc.returncode:
        print(f"warning: nbgrader export failed: {_last_error(proc)}", file=sys.stderr)
    for rep in reports.values():
        if not rep.nbgrader_ok:
            continue
        args = ["generate_feedback", assignment, f"--student={rep.student}", "--force"]
        args += [f"--GenerateFeedback.preprocessors={pp}" for pp in FEEDBACK_PREPROCESSORS]
        proc = nbgrader(root, args, tree, db_url)
        if proc.returncode:
            rep.errors.append(f"nbgrader generate_feedback failed: {_last_error(proc)}")
            continue
        summary = (out / rep.student / "summary.txt").read_text()
        notes = "".join(f"note: {n}\n" for n in rep.cell_notes)
        fb = root / "feedback" / rep.student / assignment / "isolated_tests.txt"
        results.write_atomic(fb, summary + notes)
    write_marks(out / "marks_with_notebook.csv", list(reports.values()))
    return list(reports.values())


def write_marks(path: Path, reports: list[StudentReport]) -> None:
    """The cohort table: gradebook total, isolated score, and what went wrong."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student", "total", "max_total", "isolated", "isolated_max", "status", "notes"])
    for r in sorted(reports, key=lambda r: r.student):
        iso = r.isolated or {}
        status = "; ".join(r.errors) or iso.get("extra_data", {}).get("status", "not graded")
        total = "error" if r.total is None else f"{r.total:g}"
        w.writerow([
            r.student, total, "" if r.max_total is None else f"{r.max_total:g}",
            f"{iso['score']:g}" if iso else "error", f"{iso['max_score']:g}" if iso else "",
            status, "; ".join(r.cell_notes),
        ])  # fmt: skip
    results.write_atomic(path, buf.getvalue())


def table(reports: list[StudentReport]) -> str:
    """The mark table printed at the end of a run."""
    rows = [("student", "notebook total", "isolated tests", "status")]
    for r in sorted(reports, key=lambda r: r.student):
        iso = r.isolated
        total = "error" if r.total is None else f"{r.total:g}/{r.max_total:g}"
        isolated = f"{iso['score']:g}/{iso['max_score']:g}" if iso else "error"
        status = "; ".join(r.errors) or (iso["extra_data"]["status"] if iso else "not graded")
        rows.append((r.student, total, isolated, status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    )
