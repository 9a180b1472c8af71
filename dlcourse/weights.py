"""The course's reference weights in weights/, each recorded in weights/manifest.json.

The manifest says how every file was made (command, device, time) and what it scores, so a
threshold in a hidden test can always be traced back to a measurement.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
# The only weight files students get (in the student kit): instruments the notebooks use, not
# answers to any task. Submitted as a student's own, they would earn marks for the course's work.
SHIPPED: dict[str, str] = {
    "fmnist_classifier.pt": "CW2's feature space for FID, KID and class coverage "
    "(dlcourse.classifier.load_classifier); students measure their samples with it",
}


def sha256(path: Path) -> str:
    """The file's sha256, read in blocks (submitted files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def manifest() -> dict[str, dict[str, Any]]:
    """File name -> entry (sha256, bytes, metrics, training_time_s, device, command)."""
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())["files"]


def record(path: Path, **entry: Any) -> dict[str, Any]:
    """Add or replace the manifest entry of a file in weights/ (written atomically)."""
    path = Path(path)
    files = manifest()
    files[path.name] = {"sha256": sha256(path), "bytes": path.stat().st_size, **entry}
    text = json.dumps({"files": dict(sorted(files.items()))}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=WEIGHTS_DIR, suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the manifest is a normal tracked file
    os.replace(tmp, MANIFEST)
    return files[path.name]


def load_state_dict(name_or_path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from weights/ (or a path), loaded without unpickling arbitrary objects."""
    path = Path(name_or_path)
    if not path.is_absolute() and not path.exists():
        path = WEIGHTS_DIR / path
    entry = manifest().get(path.name)
    if entry and path.parent == WEIGHTS_DIR and sha256(path) != entry["sha256"]:
        raise ValueError(f"{path} does not match its sha256 in {MANIFEST}; restore it from git")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path} is not a state_dict (a dict of tensors)")
    return sd
