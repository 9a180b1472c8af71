"""Shared fixtures for the grading engine's tests: the toy assignment and its submissions."""

import fcntl
import hashlib
import json
import os
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


@pytest.fixture(scope="session")
def once(tmp_path_factory):
    """Run an expensive build once per test run, even across pytest-xdist workers.

    `once(name, build)` calls `build(folder)` in the first worker that asks (the others wait
    on a file lock) and returns the JSON it produced, so a cohort is graded once, not per worker.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base

    def run(name, build):
        folder = shared / f"once-{name}"
        folder.mkdir(exist_ok=True)
        with open(shared / f"once-{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = folder / "result.json"
            if not done.is_file():
                done.write_text(json.dumps(build(folder)))
            return folder, json.loads(done.read_text())

    return run
