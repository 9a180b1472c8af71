"""Shared test set-up: the venv's bin on PATH (nbgrader shells out to alembic), quiet matplotlib."""

import os
import sys
from pathlib import Path

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("MPLBACKEND", "Agg")
# pytest-xdist runs two workers on two cores, and each starts notebook kernels and graders: one
# thread each keeps OpenMP from spin-waiting on oversubscribed cores (a 60x slowdown measured).
os.environ.setdefault("OMP_NUM_THREADS", "1")
