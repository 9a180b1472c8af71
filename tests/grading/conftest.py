"""Shared fixtures for the grading engine's tests: the toy assignment and its submissions."""

import hashlib
from pathlib import Path

import pytest

from dlcourse.grading import spec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
SUBMISSIONS = FIXTURES / "submissions"


def tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file under root, to prove grading never modifies a submission."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def hash_tree():
    return tree_hash


@pytest.fixture(scope="session")
def toy_spec() -> spec.Spec:
    return spec.load("toy", FIXTURES / "toy_tests")
