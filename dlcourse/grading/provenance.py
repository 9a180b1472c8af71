"""Whether submitted weights are the course's own, judged by their values, not by file hashes.

A file hash sees only a byte-identical copy. The course's weight files (weights/manifest.json:
references, baselines, and the classifier the student kit ships for CW2's FID) can be renamed,
re-saved, padded with extra tensors or fine-tuned for a few steps and submitted as a student's
own. Two checks, both in the grader on tensors loaded with `weights_only=True`:

- correlation: a submitted floating-point tensor with as many numbers as a course tensor, whose
  values correlate with it at CORRELATION or more (in any shape: renamed, reshaped, lightly
  fine-tuned);
- containment: at least CONTAINED of a course tensor's distinct values found, bit for bit,
  among the submitted values (moved into a larger tensor, split, permuted). Independent
  training does not reproduce float32 bit patterns: chance matches stay near 0.

Tensors of fewer than MIN_VALUES numbers (biases, batch-norm scales) say too little either way
and are left out. A file byte-identical to a course file is named as such. Every match is a
FLAG for staff. A match with a file students have (weights.SHIPPED: the kit's classifier) also
withholds the marks the file would earn (accuracy, sample quality) for a person to decide
(`Student.own_weights`); reference weights never reach students, so a copy of one is a leak
for staff to chase, and the instructor's own submission keeps its marks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from dlcourse import weights

MIN_VALUES = 256  # numbers in a tensor, and distinct values, for it to be compared
CORRELATION = 0.95
CONTAINED = 0.9


@functools.cache
def course_tensors() -> tuple[tuple[str, str, torch.Tensor, torch.Tensor], ...]:
    """(file, key, values as float32, their distinct bit patterns) of every large enough
    tensor of the course's weight files, read once per process."""
    found = []
    for name in sorted(weights.manifest()):
        path = weights.WEIGHTS_DIR / name
        if not path.is_file():
            continue
        sd = torch.load(path, map_location="cpu", weights_only=True)
        for key, t in sd.items():
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() >= MIN_VALUES:
                values = t.detach().float().flatten()
                found.append((name, str(key), values, values.view(torch.int32).unique()))
    return tuple(found)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denom = a.norm() * b.norm()
    return float((a @ b) / denom) if denom > 0 else 0.0


def _share_found(values: torch.Tensor, pool: torch.Tensor) -> float:
    """The share of `values` present in `pool` (sorted): a binary search each (torch.isin was
    minutes here for a few million numbers)."""
    at = torch.searchsorted(pool, values).clamp(max=len(pool) - 1)
    return (pool[at] == values).float().mean().item()


@dataclass(frozen=True)
class Match:
    """A submitted file found to hold a course file (`course_file`, in weights/)."""

    course_file: str
    text: str  # the FLAG for staff

    @property
    def shipped(self) -> bool:
        """Students have the course file (the student kit): a copy earns nothing."""
        return self.course_file in weights.SHIPPED


def flags(submitted: dict[str, dict[str, torch.Tensor]]) -> list[Match]:
    """One match per submitted file and course file whose tensors it holds."""
    found: list[Match] = []
    for file, sd in submitted.items():
        tensors = [
            t.detach().float().flatten()
            for t in sd.values()
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() >= MIN_VALUES
        ]
        if not tensors:
            continue
        pool = torch.cat(tensors).view(torch.int32).unique()
        matches: dict[str, list[str]] = {}
        for course_file, key, values, distinct in course_tensors():
            r = max(
                (abs(_correlation(t, values)) for t in tensors if t.numel() == values.numel()),
                default=0.0,
            )
            share = _share_found(distinct, pool) if len(distinct) >= MIN_VALUES else 0.0
            if r >= CORRELATION or share >= CONTAINED:
                matches.setdefault(course_file, []).append(
                    f"{key} (r = {r:.3f}, {share:.0%} of its values)"
                )
        for course_file, keys in matches.items():
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            found.append(
                Match(
                    course_file,
                    f"{file} holds the values of {len(keys)} tensors of the course's "
                    f"weights/{course_file}: {shown}",
                )
            )
    return found


@functools.cache
def _course_files() -> dict[str, str]:
    """sha256 -> name of the course's weight files (weights/manifest.json)."""
    return {entry["sha256"]: name for name, entry in weights.manifest().items()}


def file_matches(path: Path, sd: dict[str, torch.Tensor] | None) -> list[Match]:
    """The course files one submitted weight file is or holds: byte-identical to one, or
    holding its tensors (`sd`, the file's state_dict; None when it does not load)."""
    name = Path(path).name
    if (course_file := _course_files().get(weights.sha256(path))) is not None:
        text = f"{name} is identical to the course's reference file weights/{course_file}"
        return [Match(course_file, text)]
    return flags({name: sd}) if sd is not None else []
