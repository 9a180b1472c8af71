"""Isolated grading: hidden pytest modules in grader_tests/<assignment>/ probe a student process.

This module is imported by hidden tests (`points`, `public`, `grade_cell`, `MarkWithheld`), by
notebooks (`isolated_cell`) and by the student worker, so it imports nothing heavy. See
grader_tests/README.md.
"""

from __future__ import annotations

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


class MarkWithheld(Exception):  # noqa: N818 - a verdict, not an error of the grader
    """Raised by a hidden test whose mark a person must decide: the submission behaves like one
    that scores without the work (the message says how). The test counts as not computed, so
    its cell waits for manual grading; the test should also raise a staff flag."""


def isolated_cell(grade_id: str) -> None:
    """Body of a notebook's hidden-test cell whose tests run in the isolated grader.

    It does nothing, wherever it runs: the cell's score is written by the isolated grader
    (preprocessors.IsolatedGrades), and nothing the student's kernel does (its environment,
    its own copy of this function) can change that. The call names the cell for readers and
    for the project's check that every test cell has hidden tests.
    """
