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
"""

from __future__ import annotations

import json
import re
from typing import Any

from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_output
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

from dlcourse.grading.preprocessors import OUTPUT_CELL_BYTES
from dlcourse.notebook import MAX_CELL_CODE_CHARS, prompts

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'"
)
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S | re.I)

FEEDBACK_PREPROCESSORS = [
    "dlcourse.grading.feedback.LimitSize",  # before anything renders: bounded work and memory
    "dlcourse.grading.feedback.HideHiddenTests",
    "nbconvert.preprocessors.sanitize.SanitizeHTML",  # markdown and HTML outputs: no handlers
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]


class LimitSize(NbGraderPreprocessor):
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


class HideHiddenTests(ClearHiddenTests):
    """ClearHiddenTests, plus tracebacks cut down to `Name: message` in the cells it touched."""

    enforce_metadata = False  # feedback only reads; the gradebook already holds the grades

    def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> tuple[Any, Any]:
        if cell.cell_type == "code" and self._remove_hidden_test_region(cell):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
        return cell, resources


class SafeFeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter, its pages without scripts and with a strict CSP."""

    def from_notebook_node(
        self, nb: Any, resources: Any = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        output, resources = super().from_notebook_node(nb, resources, **kw)
        return safe_page(output), resources


def safe_page(html: str) -> str:
    """`html` without script elements, with the CSP as the first thing in its head."""
    html = _SCRIPT.sub("", html)
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    head = re.search(r"<head[^>]*>", html, re.I)
    if head is None:
        return f"<head>{meta}</head>{html}"
    return html[: head.end()] + "\n" + meta + html[head.end() :]
