"""`dlcourse` command line (also `python -m dlcourse`)."""

from __future__ import annotations

import argparse
import sys

from dlcourse.student_commands import add_student_commands


def _cmd_release(args: argparse.Namespace) -> int:
    from dlcourse import release

    return release.main(args.assignments, out=args.out)


def _cmd_train_reference(args: argparse.Namespace) -> int:
    import importlib

    try:
        module = importlib.import_module(f"dlcourse.reference.{args.name}")
    except ModuleNotFoundError:
        print(f"error: no reference training script for {args.name!r}", file=sys.stderr)
        return 2
    return module.main(args.args)


def _cmd_student_kit(args: argparse.Namespace) -> int:
    from dlcourse import kit

    return kit.main(args.dir, force=args.force)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlcourse", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    add_student_commands(sub)

    s = sub.add_parser("release", help="generate student versions into release/ (nbgrader)")
    s.add_argument("assignments", nargs="*", help="names (default: every assignment)")
    s.add_argument("--out", help="release folder (default: release/ in the course root)")
    s.set_defaults(func=_cmd_release)

    s = sub.add_parser("train-reference", help="train a reference model into weights/")
    s.add_argument("name", help="assignment, e.g. cw1")
    s.add_argument("args", nargs=argparse.REMAINDER, help="passed to the training script")
    s.set_defaults(func=_cmd_train_reference)

    s = sub.add_parser("student-kit", help="write what students get (no solutions) into DIR")
    s.add_argument("dir", help="new or empty folder (built beside it, then renamed into place)")
    s.add_argument("--force", action="store_true", help="replace DIR when it is not empty")
    s.set_defaults(func=_cmd_student_kit)

    from dlcourse.grading.commands import add_subcommands

    add_subcommands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
