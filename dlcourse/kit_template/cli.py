"""`dlcourse` command line of the student kit (also `python -m dlcourse`).

The course repository's CLI also registers the staff commands (release, grade, autograde),
which need what the kit does not ship; this one has the student commands and `validate`, which
runs the public checks (public_checks/: the @public tests only) with the same grading engine
and sandbox as the course's grader.
"""

from __future__ import annotations

import argparse

from dlcourse.grading.commands import add_validate
from dlcourse.student_commands import add_student_commands


def build_parser() -> argparse.ArgumentParser:
    """The student commands: data, check, validate."""
    p = argparse.ArgumentParser(prog="dlcourse", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    add_student_commands(sub)
    add_validate(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the kit's `dlcourse` command."""
    args = build_parser().parse_args(argv)
    return args.func(args)
