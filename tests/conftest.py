"""Shared test set-up: the venv's bin on PATH (nbgrader shells out to alembic), quiet matplotlib."""

import fcntl
import json
import os
import sys
from pathlib import Path

import pytest

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("MPLBACKEND", "Agg")
# pytest-xdist runs four workers on two cores, and each starts notebook kernels and graders: one
# thread each keeps OpenMP from spin-waiting on oversubscribed cores (a 60x slowdown measured).
os.environ.setdefault("OMP_NUM_THREADS", "1")


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
