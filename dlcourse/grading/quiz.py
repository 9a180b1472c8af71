"""Marking quiz answers: the values a notebook assigns to Q1, Q2, ..., compared in the grader.

The answers are read from the notebook's source (`Student.literal`), so no student code runs
and nothing a notebook does can change its own marks. A wrong answer's message names the
expected one; it is shown in the feedback after grading, never by `dlcourse validate`.
"""

from __future__ import annotations

import math
from typing import Any

from dlcourse.grading.student import Student
from dlcourse.notebook import NotLiteral


def _matches(got: Any, expected: Any, rel_tol: float, abs_tol: float) -> bool:
    if isinstance(expected, str):
        return isinstance(got, str) and got.strip().lower() == expected.lower()
    if isinstance(expected, tuple | list):
        return (
            isinstance(got, tuple | list)
            and len(got) == len(expected)
            and all(_matches(g, e, rel_tol, abs_tol) for g, e in zip(got, expected, strict=True))
        )
    if isinstance(expected, bool) or isinstance(got, bool):
        return got is expected
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return math.isclose(got, expected, rel_tol=rel_tol, abs_tol=abs_tol)
    return got == expected


def expect(
    student: Student, name: str, expected: Any, rel_tol: float = 0.0, abs_tol: float = 0.0
) -> None:
    """Fail unless the notebook's `name` equals `expected`: numbers within the tolerances
    (exact by default), text ignoring case and surrounding spaces, tuples element by element."""
    try:
        found, got = student.literal(name)
    except NotLiteral as exc:
        raise AssertionError(f"{name} = ...: {exc}; write the value itself") from None
    if not found:
        raise AssertionError(f"{name} is not answered: write {name} = <your answer>")
    if not _matches(got, expected, rel_tol, abs_tol):
        within = []
        if rel_tol:
            within.append(f"{rel_tol:g} relative")
        if abs_tol:
            within.append(f"{abs_tol:g}")
        tolerance = f" (within {' or '.join(within)})" if within else ""
        raise AssertionError(
            f"{name}: you answered {got!r}; the expected answer is {expected!r}{tolerance}"
        )
