"""nbgrader feedback without hidden tests: their code and the tracebacks that quote it.

nbgrader 0.9.6 writes feedback from the autograded notebook, where the hidden tests were
restored; a failing hidden assertion's traceback would show its line. This preprocessor runs
first in `generate_feedback`: it removes the hidden regions and keeps only the error's name and
message (what the student needs) in the outputs of those cells.
"""

from __future__ import annotations

from typing import Any

from nbgrader.preprocessors import ClearHiddenTests

FEEDBACK_PREPROCESSORS = [
    "dlcourse.grading.feedback.HideHiddenTests",
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]


class HideHiddenTests(ClearHiddenTests):
    """ClearHiddenTests, plus tracebacks cut down to `Name: message` in the cells it touched."""

    enforce_metadata = False  # feedback only reads; the gradebook already holds the grades

    def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> tuple[Any, Any]:
        if cell.cell_type == "code" and self._remove_hidden_test_region(cell):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
        return cell, resources
