"""What an assignment is, for grading: grader_tests/<assignment>/assignment.toml.

The one owner of the submitted notebook's name, the weight files and the limits: the grader,
the worker, validation and nbgrader's exclude_overwriting (nbgrader_config.py) all read it here.
Imports nothing heavy, because nbgrader loads it with its configuration.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from dlcourse.course import GRADER_TESTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class Limits:
    """Per-submission limits of the student process, from assignment.toml `[limits]`."""

    wall_s: float = 900.0  # all calls of one submission together (a safety stop)
    call_s: float = 120.0  # one probe call (also the notebook load)
    memory_mb: int = 6144  # memory the worker's process tree allocated (sandbox.py)
    file_mb: int = 64  # largest file the worker may write (its log included)
    disk_mb: int = 1024  # the nbgrader kernel's scratch copy of the folder (a sized tmpfs)
    cpu_s: float | None = None  # CPU seconds of one worker process (default: wall_s)
    startup_s: float = 120.0  # starting Python and importing torch (a safety stop)
    call_cpu_s: float | None = None  # CPU seconds one call may spend (default: call_s)

    @property
    def cpu_limit(self) -> float:
        """CPU time is the student's own cost, whatever the machine's load: not scaled."""
        return self.wall_s if self.cpu_s is None else self.cpu_s

    @property
    def call_cpu_limit(self) -> float:
        """A call stopped after spending this many CPU seconds was running, not starved."""
        return self.call_s if self.call_cpu_s is None else self.call_cpu_s

    def with_time_scale(self, factor: float) -> Limits:
        """The wall-clock safety stops `factor` times longer, for grading again what a busy
        machine stopped; the CPU-time and memory limits, the student's own, stay."""
        return dataclasses.replace(
            self,
            wall_s=self.wall_s * factor,
            call_s=self.call_s * factor,
            startup_s=self.startup_s * factor,
            cpu_s=self.cpu_limit,
            call_cpu_s=self.call_cpu_limit,
        )


@dataclass(frozen=True)
class Spec:
    name: str
    tests_dir: Path
    notebook: str
    weights: tuple[str, ...]
    limits: Limits

    def missing_files(self, submission: Path) -> list[str]:
        """The files this spec requires that the submission folder lacks."""
        return [f for f in (self.notebook, *self.weights) if not (Path(submission) / f).is_file()]


def load(assignment: str, tests_dir: Path | None = None) -> Spec:
    """The spec of `assignment` (from grader_tests/, or `tests_dir` for fixture assignments)."""
    tests_dir = Path(tests_dir or GRADER_TESTS / assignment).resolve()
    path = tests_dir / "assignment.toml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no grading spec; see grader_tests/README.md")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if "notebook" not in data:
        raise ValueError(f'{path}: `notebook = "name.ipynb"` is required')
    known = set(Limits.__dataclass_fields__)
    limits = data.get("limits", {})
    if unknown := set(limits) - known:
        raise ValueError(f"{path}: unknown [limits] keys {sorted(unknown)}; known: {sorted(known)}")
    return Spec(
        name=assignment,
        tests_dir=tests_dir,
        notebook=data["notebook"],
        weights=tuple(data.get("weights", [])),
        limits=Limits(**limits),
    )


def exclude_overwriting(root: Path = GRADER_TESTS) -> dict[str, list[str]]:
    """nbgrader's Autograde.exclude_overwriting: no student weight file is ever replaced."""
    found = {}
    for toml in sorted(Path(root).glob("*/assignment.toml")):
        found[toml.parent.name] = list(load(toml.parent.name, toml.parent).weights)
    return found
