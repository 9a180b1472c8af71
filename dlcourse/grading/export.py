"""`nbgrader export`'s CSV, without a total where a person still has to grade.

nbgrader's own CSV gives every submission a score. A cell that waits for a person (a written
answer not marked yet, a test cell the isolated grader could not mark: refused, failed, or
stopped by a safety limit, "incomplete, regrade") counts there as whatever nbgrader stored,
usually 0, and the total looks final. Here such a submission's scores are left empty and its
status says how many cells wait (nbgrader_config.py makes this the export plugin).
"""

from __future__ import annotations

import csv
from typing import Any

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import CsvExportPlugin

COLUMNS = [
    "assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
    "raw_score", "late_submission_penalty", "score", "max_score", "status",
]  # fmt: skip


class CsvExport(CsvExportPlugin):
    """nbgrader's CSV columns plus `status`; no score where a cell waits for a person."""

    def export(self, gradebook: Gradebook) -> None:
        dest = self.to or "grades.csv"
        students = {str(s) for s in self.student}
        assignments = {str(a) for a in self.assignment}
        self.log.info("Exporting grades to %s", dest)
        with open(dest, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS)
            w.writeheader()
            for a in gradebook.assignments:
                if assignments and a.name not in assignments:
                    continue
                for s in gradebook.students:
                    if not students or s.id in students:
                        w.writerow(_row(gradebook, a, s))


def _row(gradebook: Gradebook, a: Any, s: Any) -> dict[str, Any]:
    row = {
        "assignment": a.name, "duedate": a.duedate or "", "student_id": s.id,
        "last_name": s.last_name or "", "first_name": s.first_name or "",
        "email": s.email or "", "max_score": a.max_score,
    }  # fmt: skip
    try:
        sub = gradebook.find_submission(a.name, s.id)
    except MissingEntry:
        return {**row, "timestamp": "", "raw_score": 0.0, "late_submission_penalty": 0.0,
                "score": 0.0, "status": "not submitted"}  # fmt: skip
    waiting = sum(g.needs_manual_grade for nb in sub.notebooks for g in nb.grades)
    row.update(timestamp=sub.timestamp or "", late_submission_penalty=sub.late_submission_penalty)
    if waiting:
        return {**row, "raw_score": "", "score": "",
                "status": f"not final: {waiting} cells need grading"}  # fmt: skip
    score = max(0.0, sub.score - sub.late_submission_penalty)
    return {**row, "raw_score": sub.score, "score": score, "status": "final"}
