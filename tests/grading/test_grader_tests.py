"""Every grader_tests/<assignment>/ keeps the contract: @points on each test, GRADE_CELL, and
the points of a GRADE_CELL's tests equal to that cell's points in the source notebook."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

from dlcourse import course
from dlcourse.grading import spec

ASSIGNMENTS = sorted(p.parent.name for p in course.GRADER_TESTS.glob("*/assignment.toml"))


def cell_points(assignment: str) -> dict[str, float]:
    a = course.get(assignment)
    points = {}
    for nb_path in a.notebooks:
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade"):
                points[meta["grade_id"]] = float(meta.get("points", 0))
    return points


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grade_cells_match_the_notebook(assignment):
    s = spec.load(assignment)
    totals: dict[str, float] = {}
    for path in sorted(Path(s.tests_dir).glob("test_*.py")):
        mod_spec = importlib.util.spec_from_file_location(f"gt_{assignment}_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        assert isinstance(getattr(module, "GRADE_CELL", None), str), f"{path}: no GRADE_CELL"
        tests = [f for n, f in vars(module).items() if n.startswith("test_") and callable(f)]
        tests = [f for f in tests if getattr(f, "__test__", True)]
        missing = [f.__name__ for f in tests if not hasattr(f, "_dlcourse_points")]
        assert not missing, f"{path}: tests without @points: {missing}"
        cell = module.GRADE_CELL
        totals[cell] = totals.get(cell, 0.0) + sum(f._dlcourse_points for f in tests)
    notebook = cell_points(assignment)
    for cell, total in totals.items():
        assert cell in notebook, f"{assignment}: GRADE_CELL {cell} is not a grade cell"
        assert notebook[cell] == total, f"{cell}: notebook {notebook[cell]:g}, tests {total:g}"
