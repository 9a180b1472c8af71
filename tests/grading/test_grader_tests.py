"""Every grader_tests/<assignment>/ keeps the contract: @points on each test, a grade cell for
each (its own @grade_cell or the module's GRADE_CELL), the points of a cell's tests equal to
that cell's points in the source notebook, and every autograder test cell of every notebook
marked by such tests: a point nbgrader's own pass would give comes from the student's kernel."""

import importlib.util
import re
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


def autograder_cells(assignment: str) -> set[str]:
    """Graded cells that are not written answers: the autograder's, which only the isolated
    grader may mark."""
    found = set()
    for nb_path in course.get(assignment).notebooks:
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                found.add(meta["grade_id"])
    return found


def test_every_assignment_with_test_cells_has_hidden_tests():
    missing = [
        a.name
        for a in course.assignments()
        if autograder_cells(a.name) and a.name not in ASSIGNMENTS
    ]
    assert not missing, f"test cells that no isolated grader marks: {missing}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grade_cells_match_the_notebook(assignment):
    s = spec.load(assignment)
    totals: dict[str, float] = {}
    for path in sorted(Path(s.tests_dir).glob("test_*.py")):
        mod_spec = importlib.util.spec_from_file_location(f"gt_{assignment}_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        tests = [f for n, f in vars(module).items() if n.startswith("test_") and callable(f)]
        tests = [f for f in tests if getattr(f, "__test__", True)]
        missing = [f.__name__ for f in tests if not hasattr(f, "_dlcourse_points")]
        assert not missing, f"{path}: tests without @points: {missing}"
        for f in tests:
            cell = getattr(f, "_dlcourse_grade_cell", None) or getattr(module, "GRADE_CELL", None)
            assert isinstance(cell, str), f"{path}: {f.__name__} has no GRADE_CELL or @grade_cell"
            totals[cell] = totals.get(cell, 0.0) + f._dlcourse_points
    notebook = cell_points(assignment)
    untested = sorted(autograder_cells(assignment) - set(totals))
    assert not untested, f"{assignment}: test cells that no hidden test marks: {untested}"
    for cell, total in totals.items():
        assert cell in notebook, f"{assignment}: GRADE_CELL {cell} is not a grade cell"
        assert notebook[cell] == total, f"{cell}: notebook {notebook[cell]:g}, tests {total:g}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_hidden_region_names_its_own_cell(assignment):
    """`isolated_cell(id)` marks where the grader's score lands; an id copied from another cell
    (as after a notebook is split) misleads every reader of the instructor's notebook."""
    wrong = []
    for nb_path in course.get(assignment).notebooks:
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            named = re.findall(r"isolated_cell\(\s*[\"']([^\"']+)[\"']", cell.source)
            if named and named != [meta.get("grade_id")]:
                wrong.append(f"{nb_path.name}: cell {meta.get('grade_id')} calls {named}")
    assert not wrong, wrong
