"""Shared test set-up: the venv's bin on PATH (nbgrader shells out to alembic), quiet matplotlib."""

import os
import sys
from pathlib import Path

os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("MPLBACKEND", "Agg")
