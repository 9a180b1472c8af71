"""Reading and writing nbgrader's gradebook: where the isolated grader's points end up.

Every autograder test cell of a notebook (a graded cell that is not a solution: known from the
source notebook nbgrader recorded, never from the submission) takes its points from the isolated
grader alone. nbgrader's own pass leaves such a cell at 0, waiting for a person
(preprocessors.SaveAutoGrades); `merge` then writes the isolated tests' points into the cell
named by each test module's GRADE_CELL. A cell stays 0 and waiting, with the reason, when the
grading failed, was refused, was stopped by a safety limit, could not compute one of its tests,
or has no test at all: nothing a kernel printed or skipped can stand in for the grader.
What staff must know (no sandbox, copied weights) goes into a gradebook comment, so the
formgrader shows it next to the marks; `for_student` takes it out of whatever students read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcourse.grading.results import INCOMPLETE, UNSANDBOXED, CellGrade, GradingResults
from dlcourse.grading.spec import Spec

NOTES_HEADER = "Isolated grader:"
# The grader's paragraph in a comment: from the header to the next blank line or the end.
_NOTES = re.compile(rf"(?:^|\n\n){re.escape(NOTES_HEADER)}.*?(?=\n\n|$)", re.S)


def database_url(db_url: str | None, root: Path) -> str:
    """The gradebook's SQLAlchemy URL: sqlite:///<root>/gradebook.db unless one is given.

    A plain postgresql:// (or postgres://) URL gets the psycopg2 driver the course pins:
    SQLAlchemy 2.1 would otherwise look for psycopg 3, which is not installed.
    """
    if not db_url:
        return f"sqlite:///{Path(root) / 'gradebook.db'}"
    scheme, sep, rest = db_url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg2://{rest}"
    return db_url


def takes_concurrent_writers(db_url: str) -> bool:
    """nbgrader's sqlite gradebook takes one writer at a time (parallel autograde processes
    fail with "database is locked"); a server database such as PostgreSQL takes many."""
    return not db_url.startswith("sqlite")


def shown(db_url: str) -> str:
    """The URL for messages and logs, its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(db_url).render_as_string(hide_password=True)


def check_reachable(db_url: str) -> None:
    """Raise ValueError, saying what to do, unless the gradebook's database can be opened."""
    from sqlalchemy import create_engine, exc

    try:
        engine = create_engine(db_url)
        with engine.connect():
            pass
        engine.dispose()
    except exc.ArgumentError as e:  # the URL itself is not repeated: it may hold a password
        raise ValueError(
            f"--db is not a database URL ({e}); e.g. postgresql://USER@HOST/DATABASE"
        ) from e
    except (exc.SQLAlchemyError, ImportError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"cannot open the gradebook {shown(db_url)}: {first}. Is the server running, "
            "does the database exist (createdb), and can this machine reach it?"
        ) from e


@dataclass
class CellMark:
    """What `merge` wrote for one test cell; `reason` says why it waits for a person."""

    score: float
    max_score: float
    reason: str = ""


def test_cells(gb: Any, notebook_id: str, assignment: str) -> list[str]:
    """The notebook's autograder test cells, as nbgrader recorded the source notebook: graded
    cells that are not solutions (written answers, which a person marks anyway)."""
    nb = gb.find_notebook(notebook_id, assignment)
    solutions = {c.name for c in nb.solution_cells}
    return [c.name for c in nb.grade_cells if c.name not in solutions]


def merge(
    db_url: str,
    course_id: str,
    spec: Spec,
    student: str,
    graded: GradingResults | None,
    order: Sequence[str] = (),
) -> tuple[dict[str, CellMark], list[str]]:
    """Write the isolated scores into the notebook's test cells, and the grader's notes.

    Returns what each test cell got and the problems staff must fix (a GRADE_CELL that is
    not a test cell, points that disagree with the notebook). `graded` None: the isolated
    grader did not run at all; every test cell then waits for a person. `order`: the
    notebook's grade_ids from the top, so that the notes go to the comment box the formgrader
    shows first (without it they stay where an earlier run put them).
    """
    from nbgrader.api import Gradebook, MissingEntry

    problems: list[str] = []
    marks: dict[str, CellMark] = {}
    notebook_id = Path(spec.notebook).stem
    cells = graded.grade_cells() if graded is not None else {}
    with Gradebook(db_url, course_id) as gb:
        for name in test_cells(gb, notebook_id, spec.name):
            try:
                grade = gb.find_grade(name, notebook_id, spec.name, student)
            except MissingEntry:
                continue
            mark = marks[name] = _cell_mark(graded, cells.get(name), grade.max_score)
            grade.auto_score = mark.score
            grade.needs_manual_grade = bool(mark.reason)
        for cell, agg in cells.items():
            if cell is None:
                problems.append("tests without GRADE_CELL: their points are not in the gradebook")
            elif cell not in marks:
                problems.append(f"GRADE_CELL {cell} is not a test cell of {notebook_id}")
            elif abs(agg.max_score - marks[cell].max_score) > 1e-9:
                problems.append(
                    f"{cell} is worth {marks[cell].max_score:g} in the notebook but its tests "
                    f"sum to {agg.max_score:g}"
                )
        if graded is not None:
            _write_notes(gb, notebook_id, spec.name, student, staff_notes(graded), order)
        gb.db.commit()
    return marks, problems


def _cell_mark(graded: GradingResults | None, agg: CellGrade | None, max_score: float) -> CellMark:
    if graded is None:
        return CellMark(0.0, max_score, "the isolated grader did not run")
    if graded.failure is not None:
        return CellMark(0.0, max_score, graded.failure_line)
    if agg is None:
        return CellMark(0.0, max_score, "no test of the isolated grader marks this cell")
    score = min(agg.score, max_score)
    if agg.incomplete:
        return CellMark(score, max_score, f"{INCOMPLETE}: a test was stopped by a time limit")
    if agg.errors:
        return CellMark(score, max_score, "tests not computed: " + "; ".join(agg.errors)[:500])
    return CellMark(score, max_score)


def staff_notes(graded: GradingResults) -> list[str]:
    """What the gradebook comment must say: status, sandbox, flags."""
    notes = [f"status {graded.status}"]
    notes.append("sandboxed" if graded.sandboxed else UNSANDBOXED)
    notes += [f"FLAG: {f}" for f in graded.flags]
    return notes


def _write_notes(
    gb: Any, notebook_id: str, assignment: str, student: str, notes: list[str], order: Sequence[str]
) -> None:
    """Put the notes in one comment of the notebook, replacing an earlier grader's: the first
    in `order`, else the one that holds them already, else the first by name."""
    from nbgrader.api import MissingEntry

    try:
        nb = gb.find_submission_notebook(notebook_id, assignment, student)
    except MissingEntry:
        return
    by_name = {c.name: c for c in nb.comments}
    if not by_name:
        return
    held = [n for n, c in by_name.items() if NOTES_HEADER in (c.auto_comment or "")]
    first = next((n for n in order if n in by_name), None) or min(held or by_name)
    for name in held:  # an earlier grader's notes, wherever they are
        by_name[name].auto_comment = _NOTES.sub("", by_name[name].auto_comment).strip() or None
    c = by_name[first]
    note = f"{NOTES_HEADER} " + "; ".join(notes)
    c.auto_comment = "\n\n".join(filter(None, [c.auto_comment, note]))


def totals(
    db_url: str, course_id: str, assignment: str, student: str
) -> tuple[float, float] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return None
        return sub.score, sub.max_score


def comment(db_url: str, course_id: str, spec: Spec, student: str) -> str:
    """The isolated grader's gradebook comment for a student ('' if none)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gb:
        try:
            nb = gb.find_submission_notebook(Path(spec.notebook).stem, spec.name, student)
        except MissingEntry:
            return ""
        texts = [c.auto_comment or "" for c in nb.comments]
    return next((t[t.index(NOTES_HEADER) :] for t in texts if NOTES_HEADER in t), "")


def for_student(comment: str | None) -> str:
    """A gradebook comment without the isolated grader's staff notes (status, sandbox, FLAGs),
    which the formgrader shows and a student must not see; a TA's own words are kept, also when
    written in the same box before or after the notes."""
    return _NOTES.sub("", comment or "").strip()


@dataclass
class CellRecord:
    """One graded cell of a student's notebook, as the student's feedback shows it."""

    name: str
    score: float
    max_score: float
    waiting: bool  # needs a person: a written answer not marked yet, a test cell not computed
    by_person: bool  # a TA set the mark (formgrader)
    test_cell: bool  # an autograder test cell: marked by the isolated grader
    comment: str  # the TA's comment, without the grader's staff notes


def student_cells(
    db_url: str, course_id: str, assignment: str, notebook_id: str, student: str
) -> dict[str, CellRecord]:
    """Every graded cell of the student's notebook by grade_id ({} when nbgrader has no
    submission for it)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id) as gb:
        try:
            nb = gb.find_submission_notebook(notebook_id, assignment, student)
        except MissingEntry:
            return {}
        tests = set(test_cells(gb, notebook_id, assignment))
        comments = {c.name: for_student(c.comment) for c in nb.comments}
        return {
            g.name: CellRecord(
                name=g.name,
                score=float(g.score),
                max_score=float(g.max_score),
                waiting=bool(g.needs_manual_grade),
                by_person=g.manual_score is not None,
                test_cell=g.name in tests,
                comment=comments.get(g.name, ""),
            )
            for g in nb.grades
        }
