"""`dlcourse` command line of the student kit (also `python -m dlcourse`).

The course repository's CLI also registers the staff commands (release, grading), which import
modules the kit does not ship; this one has only what works from the kit itself, and says where
`validate` went instead of failing with "invalid choice".
"""

from __future__ import annotations

import argparse
import sys

from dlcourse.student_commands import add_student_commands


def _cmd_validate(args: argparse.Namespace) -> int:
    print(
        "error: `dlcourse validate` needs the course's grader and hidden tests, which are not "
        "part of the student kit.\nBefore submitting: restart the kernel and run all cells, make "
        "sure every check cell passes and that the weight files named in the notebook are next "
        "to it. The course staff run the grader's public checks on submissions.",
        file=sys.stderr,
    )
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The student commands: data, check (and a validate that explains itself)."""
    p = argparse.ArgumentParser(prog="dlcourse", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    add_student_commands(sub)

    # Notebooks and course pages mention `dlcourse validate ...`: take any arguments, explain.
    s = sub.add_parser("validate", help="not in the student kit (says what to do instead)")
    s.set_defaults(func=_cmd_validate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the kit's `dlcourse` command."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "validate":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args)
