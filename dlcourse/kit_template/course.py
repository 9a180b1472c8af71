"""Where things are in the student kit (the course repository's own course.py is staff-only).

The grading engine the kit ships for `dlcourse validate` finds an assignment's checks under
GRADER_TESTS: here public_checks/, with a folder per released assignment (its assignment.toml
and its @public tests, where it has any; dlcourse/public_checks.py in the course repository
writes it). STUDENT_KIT tells dlcourse.grading.heldout that there is no private test set here,
and no seed: the public check that times a model on 10,000 images gets images of the same shape
instead (`heldout.stand_in_split`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "release"
GRADER_TESTS = ROOT / "public_checks"
STUDENT_KIT = True
# sha256 and path of each notebook as released (`dlcourse student-kit` writes it, in
# `sha256sum` format): an assignment whose notebook differs has been started.
RELEASED_HASHES = ROOT / "ci" / "released.sha256"


def checkable() -> list[str]:
    """The assignments `dlcourse validate` knows: a folder of public_checks/ each."""
    return sorted(p.parent.name for p in GRADER_TESTS.glob("*/assignment.toml"))


def started() -> list[str]:
    """The assignments whose notebook in release/ is no longer the released one (the push
    check validates those)."""
    from dlcourse.grading import spec

    released = set(RELEASED_HASHES.read_text().splitlines())
    found = []
    for name in checkable():
        nb = RELEASE / name / spec.load(name).notebook
        if nb.is_file():
            digest = hashlib.sha256(nb.read_bytes()).hexdigest()
            if f"{digest}  {nb.relative_to(ROOT).as_posix()}" not in released:
                found.append(name)
    return found
