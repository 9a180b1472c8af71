"""Where things are in the course directory, and which assignment lives in which source tree.

nbgrader knows one source folder; the course has three (intro notebooks, tutorials, assessed
tasks), so every command that calls nbgrader asks this module where an assignment lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_TREES = ("notebooks", "tutorials", "source")
RELEASE = ROOT / "release"
GRADER_TESTS = ROOT / "grader_tests"


@dataclass(frozen=True)
class Assignment:
    name: str
    tree: str  # one of SOURCE_TREES

    @property
    def source_dir(self) -> Path:
        return ROOT / self.tree / self.name

    @property
    def notebooks(self) -> list[Path]:
        return sorted(self.source_dir.glob("*.ipynb"))

    @property
    def grader_tests(self) -> Path:
        return GRADER_TESTS / self.name


def assignments() -> list[Assignment]:
    """Every assignment: a folder holding notebooks in one of the source trees."""
    found = []
    for tree in SOURCE_TREES:
        for d in sorted((ROOT / tree).glob("*/")):
            if any(d.glob("*.ipynb")):
                found.append(Assignment(d.name, tree))
    return found


def get(name: str) -> Assignment:
    """The assignment called `name`, or a ValueError listing the known ones."""
    for a in assignments():
        if a.name == name:
            return a
    known = ", ".join(a.name for a in assignments()) or "none"
    raise ValueError(f"unknown assignment {name!r}; known: {known}")
