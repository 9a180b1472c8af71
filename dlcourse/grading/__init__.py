"""Isolated grading: hidden pytest modules in grader_tests/<assignment>/ probe a student process.

This module is imported by hidden tests (`points`, `public`, `grade_cell`), by notebooks
(`isolated_cell`) and by the student worker, so it imports nothing heavy. See
grader_tests/README.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def points(n: float) -> Callable[[F], F]:
    """Mark a hidden test as worth `n` points (required on every test)."""
    if n <= 0:
        raise ValueError(f"points must be positive, not {n}")

    def mark(fn: F) -> F:
        fn._dlcourse_points = float(n)  # type: ignore[attr-defined]
        return fn

    return mark


def grade_cell(grade_id: str) -> Callable[[F], F]:
    """Send a hidden test's points to the notebook cell `grade_id` instead of the module's
    GRADE_CELL: one module can then mark several cells (a quiz marks each question)."""

    def mark(fn: F) -> F:
        fn._dlcourse_grade_cell = grade_id  # type: ignore[attr-defined]
        return fn

    return mark


def public(fn: F) -> F:
    """Mark a test that `dlcourse validate` runs before the deadline (nothing secret in it)."""
    fn._dlcourse_public = True  # type: ignore[attr-defined]
    return fn


class IsolatedCellNotRun(RuntimeError):
    """Raised under nbgrader autograde: the cell's points come from `dlcourse autograde`."""


def isolated_cell(grade_id: str) -> None:
    """Body of a notebook's hidden-test cell whose tests run in the isolated grader.

    In a student's kernel it does nothing; under `nbgrader autograde` it fails, so the cell
    scores 0 until `dlcourse autograde` writes the isolated result into the gradebook.
    """
    if os.environ.get("NBGRADER_EXECUTION"):
        raise IsolatedCellNotRun(
            f"{grade_id}: marked by the course's isolated grader (dlcourse autograde), "
            "which writes this cell's score into the gradebook"
        )
