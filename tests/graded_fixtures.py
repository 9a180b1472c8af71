"""Shared by the assessed tasks' grading tests: fixture notebooks and one `dlcourse grade` run.

Fixtures are the instructor notebook with one textual change, so they follow the notebook as it
evolves (a change that no longer applies fails loudly).
"""

import subprocess
import sys
from pathlib import Path

import nbformat

from dlcourse.grading.results import GradingResults


def cells(nb) -> dict:
    """The notebook's cells by nbgrader grade_id."""
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}


def with_change(source: Path, grade_id: str, old: str, new: str):
    """The notebook at `source` with `old` replaced by `new` in the cell `grade_id`."""
    nb = nbformat.read(source, as_version=4)
    cell = cells(nb)[grade_id]
    assert cell.source.count(old) == 1, f"fixture text no longer in {grade_id}: {old!r}"
    cell.source = cell.source.replace(old, new)
    return nb


def grade(assignment: str, submissions: list[Path], out: Path) -> dict[str, GradingResults]:
    """Run `dlcourse grade` on every submission (2 jobs); the results.json files it wrote,
    read back, by submission name."""
    cmd = [sys.executable, "-m", "dlcourse", "grade", "--assignment", assignment, "--jobs", "2",
           "--out", str(out), *map(str, submissions)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {s.name: GradingResults.read(out / s.name / "results.json") for s in submissions}


def grade_once(once, assignment: str, make) -> dict[str, GradingResults]:
    """`grade` the submissions `make(folder)` writes, once per test run however many xdist
    workers ask (a CW cohort takes minutes); the results read back from `folder`/grades."""

    def build(folder: Path) -> list[str]:
        subs = make(folder)
        grade(assignment, subs, folder / "grades")
        return [s.name for s in subs]

    folder, names = once(f"{assignment}-graded", build)
    return {n: GradingResults.read(folder / "grades" / n / "results.json") for n in names}


def failed(graded: GradingResults) -> set[str]:
    """Names of the tests that did not get full marks."""
    return {t.name for t in graded.tests if t.score < t.max_score}
