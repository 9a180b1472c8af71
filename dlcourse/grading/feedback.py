"""nbgrader feedback without hidden tests, and that runs nothing a notebook put in it.

nbgrader 0.9.6 writes feedback from the autograded notebook, where the hidden tests were
restored; a failing hidden assertion's traceback would show its line. `HideHiddenTests` runs
first in `generate_feedback`: it removes the hidden regions and keeps only the error's name and
message (what the student needs) in the outputs of those cells.

The page quotes the student's markdown and outputs, which may hold HTML: an `<img onerror=...>`
in a markdown cell ran in the browser of whoever opened the feedback. nbconvert's SanitizeHTML
(bleach) cleans that HTML, and `SafeFeedbackExporter` gives the page the same
Content-Security-Policy as report.html, with no script element: nothing runs and nothing is
fetched. Equations then show as their LaTeX source (MathJax is a script from a CDN).
nbgrader_config.py makes both the defaults of `nbgrader generate_feedback`.

Students see none of the staff's notes: `GetGrades` shows the comments without the isolated
grader's paragraph (status, sandbox, FLAGs), which stays in the gradebook for the formgrader.
`WriteReport` puts report.html (the whole mark per cell, a TA's comments, the hidden tests'
marks and plots: dlcourse.grading.report) and isolated_tests.txt beside nbgrader's page, so
plain `nbgrader generate_feedback` gives a student the one page with the whole mark; nbgrader
then makes every file there readable as its own (`GenerateFeedback.permissions`, 644).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
from nbgrader.preprocessors import GetGrades as _GetGrades
from traitlets import List

from dlcourse.grading import gradebook
from dlcourse.grading.preprocessors import OUTPUT_CELL_BYTES
from dlcourse.notebook import MAX_CELL_CODE_CHARS, prompts

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'"
)
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S | re.I)
# nbgrader's page inlines Bootstrap's CSS, whose icon font (unused there) the CSP would refuse to
# load: every opening logged a Content Security Policy error in the reader's browser.
_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}", re.I)

FEEDBACK_PREPROCESSORS = [
    "dlcourse.grading.feedback.LimitSize",  # before anything renders: bounded work and memory
    "dlcourse.grading.feedback.HideHiddenTests",
    "nbconvert.preprocessors.sanitize.SanitizeHTML",  # markdown and HTML outputs: no handlers
    "dlcourse.grading.feedback.GetGrades",
    "dlcourse.grading.feedback.WriteReport",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
SUMMARY = "isolated_tests.txt"


class _FeedbackStep(NbGraderPreprocessor):
    """A step of generate_feedback. nbconvert's HTML exporter configures every step's
    display_data_priority, which nbgrader's base class declares without config=True: traitlets
    warned "Config option `display_data_priority` not recognized" for each step, each run."""

    display_data_priority = List(config=True)


class LimitSize(_FeedbackStep):
    """Cells too large to render safely are shown as a line saying so, naming the cell.

    Rendering highlights every line of code: an 8 MB cell of tuple literals drove
    generate_feedback past 11 GB. The same caps as the grader's parse of a notebook apply
    (dlcourse.notebook: 100,000 characters a cell); outputs beyond the kernel's limits (which
    an autograded notebook never has: SandboxedExecute stops the kernel first) are cut too.
    """

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        # each cell named as the student finds it (In [n]), before any source is replaced
        for cell, where in zip(nb.cells, prompts(nb.cells), strict=True):
            if len(cell.source) > MAX_CELL_CODE_CHARS:
                what = "code" if cell.cell_type == "code" else "text"
                cell.source = (
                    f"{_comment(cell.cell_type)} cell {where}: {len(cell.source):,} characters "
                    f"of {what}, over the {MAX_CELL_CODE_CHARS:,} the feedback shows"
                )
            outputs = cell.get("outputs", [])
            if outputs and len(json.dumps(outputs)) > OUTPUT_CELL_BYTES:
                cell.outputs = [
                    new_output(
                        "stream",
                        name="stdout",
                        text=f"(cell {where}: outputs over {OUTPUT_CELL_BYTES >> 20} MB, not "
                        "shown)\n",
                    )
                ]
        return nb, resources


def _comment(cell_type: str) -> str:
    return "#" if cell_type == "code" else ""


class HideHiddenTests(ClearHiddenTests, _FeedbackStep):
    """ClearHiddenTests, plus tracebacks cut down to `Name: message` in the cells it touched."""

    enforce_metadata = False  # feedback only reads; the gradebook already holds the grades

    def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> tuple[Any, Any]:
        if cell.cell_type == "code" and self._remove_hidden_test_region(cell):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
        return cell, resources


class GetGrades(_GetGrades):
    """nbgrader's step, each comment shown without the isolated grader's staff notes."""

    def _get_comment(self, cell: Any, resources: Any) -> None:
        super()._get_comment(cell, resources)
        cell.metadata.nbgrader["comment"] = gradebook.for_student(cell.metadata.nbgrader["comment"])


class WriteReport(_FeedbackStep):
    """report.html and isolated_tests.txt in the student's feedback folder (after GetGrades)."""

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        from dlcourse.grading import report, spec
        from dlcourse.grading.results import GradingResults

        info = resources["nbgrader"]
        assignment, student = info["assignment"], info["student"]
        course = CourseDirectory(config=self.config)
        toml = Path(course.root) / "grader_tests" / assignment / "assignment.toml"
        graded_nb = Path(spec.load(assignment, toml.parent).notebook) if toml.is_file() else None
        if graded_nb is not None and graded_nb.stem != info["notebook"]:
            return nb, resources  # another notebook of the assignment: not the graded one
        results_dir = Path(course.root) / "grades" / assignment / student
        folder = Path(course.format_path(course.feedback_directory, student, assignment))
        try:
            graded = GradingResults.read(results_dir / "results.json")
        except (OSError, ValueError, KeyError) as exc:
            self.log.warning("%s: no %s (%s)", student, report.REPORT, exc)
            return nb, resources
        notes = self._cell_notes(course, info, nb)
        whole = self._whole_mark(nb, info)
        report.write_report(results_dir, student, folder / report.REPORT, notes, graded, whole)
        summary = report.for_student(graded).summary(f"{assignment} - {student}")
        report.write_page(folder / SUMMARY, summary + "".join(f"note: {n}\n" for n in notes))
        return nb, resources

    def _whole_mark(self, nb: Any, info: dict[str, Any]) -> Any:
        from dlcourse.grading.report import CellRow, WholeMark

        records = gradebook.student_cells(
            info["db_url"], CourseDirectory(config=self.config).course_id, info["assignment"],
            info["notebook"], info["student"],
        )  # fmt: skip
        rows = []
        for cell, where in zip(nb.cells, prompts(nb.cells), strict=True):
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid not in records or not (utils.is_grade(cell) or utils.is_task(cell)):
                continue
            r = records[gid]
            if cell.cell_type == "code" and cell.get("execution_count"):
                where = f"In [{cell.execution_count}]"  # as nbgrader's page shows it
            mark = f"– / {r.max_score:g}" if r.waiting else f"{r.score:g} / {r.max_score:g}"
            rows.append(CellRow(where, gid, _marked_by(r), mark, r.comment, r.waiting))
        return WholeMark(rows, info["score"] + info["late_penalty"], info["max_score"],
                         info["late_penalty"])  # fmt: skip

    def _cell_notes(self, course: CourseDirectory, info: dict[str, Any], nb: Any) -> list[str]:
        """Cells the student deleted or copied (nbgrader restored them, or graded the last)."""
        from dlcourse.grading import autograde

        folder = course.format_path(course.submitted_directory, info["student"], info["assignment"])
        submitted = Path(folder) / f"{info['notebook']}.ipynb"
        expected = [c.metadata.nbgrader["grade_id"] for c in nb.cells if utils.is_grade(c)]
        return autograde.cell_problems(submitted, expected) if submitted.is_file() else []


def _marked_by(r: gradebook.CellRecord) -> str:
    if r.waiting:
        return "waits for a person"
    if r.by_person:
        return "a person"
    # a written answer nbgrader marked itself is one left as released: 0, "No response."
    return "the hidden tests" if r.test_cell else "nbgrader: not answered"


class SafeFeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter, its pages without scripts and with a strict CSP."""

    def from_notebook_node(
        self, nb: Any, resources: Any = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        output, resources = super().from_notebook_node(nb, resources, **kw)
        return safe_page(output), resources


def safe_page(html: str) -> str:
    """`html` without script elements or web fonts, with the CSP as the first thing in its
    head."""
    html = _FONT_FACE.sub("", _SCRIPT.sub("", html))
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    head = re.search(r"<head[^>]*>", html, re.I)
    if head is None:
        return f"<head>{meta}</head>{html}"
    return html[: head.end()] + "\n" + meta + html[head.end() :]
