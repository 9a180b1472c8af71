"""The grading subcommands of `dlcourse`: validate, grade, autograde, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlcourse import course


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register the grading subcommands on the `dlcourse` parser."""
    from dlcourse.grading import slurm  # its options only: it imports nothing heavy

    add_validate(sub)

    s = sub.add_parser("grade", help="hidden tests on submissions, each in its own sandbox")
    s.add_argument("submissions", nargs="+", type=Path)
    s.add_argument("--assignment", required=True)
    s.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel")
    s.add_argument("--out", type=Path, help="default: grades/<assignment>/")
    s.add_argument("--force", action="store_true", help="re-grade already graded submissions")
    _common(s)
    slurm.add_arguments(s)
    s.set_defaults(func=cmd_grade)

    s = sub.add_parser("autograde", help="nbgrader autograde + isolated tests into the gradebook")
    s.add_argument("assignment")
    s.add_argument("--root", type=Path, default=course.ROOT, help="course directory")
    s.add_argument("--db", help="gradebook URL (default sqlite:///<root>/gradebook.db)")
    s.add_argument("--jobs", type=int, default=1)
    s.add_argument("--force", action="store_true", help="re-grade already graded submissions")
    _common(s)
    slurm.add_arguments(s)
    s.set_defaults(func=cmd_autograde)

    s = sub.add_parser("demo", help="release, grade an embedded cohort, print the mark table")
    s.add_argument("--dir", type=Path, default=course.ROOT / "demo", help="scratch course dir")
    s.set_defaults(func=cmd_demo)


def add_validate(sub: argparse._SubParsersAction) -> None:
    """Register `validate` (the student kit's CLI registers it too, with its public checks)."""
    s = sub.add_parser("validate", help="pre-deadline check of one submission (public tests only)")
    s.add_argument("submission", type=Path)
    s.add_argument("--assignment", required=True)
    s.add_argument("--junit", type=Path, help="also write a JUnit XML report here")
    _common(s)
    s.set_defaults(func=cmd_validate)


def _common(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--tests",
        type=Path,
        help="tests folder (default grader_tests/<a>/; the kit's public_checks/<a>/)",
    )
    s.add_argument(
        "--unsandboxed",
        action="store_true",
        help="grade without bubblewrap (limits only); every output then says NOT SANDBOXED",
    )


def _spec(args: argparse.Namespace):
    from dlcourse.grading import spec

    return spec.load(args.assignment, args.tests)


def _sandbox(args: argparse.Namespace) -> bool:
    return not args.unsandboxed


def cmd_validate(args: argparse.Namespace) -> int:
    from dlcourse.grading import validate

    try:
        spec = _spec(args)
    except FileNotFoundError:  # in the kit too, where the hidden tests' README is not
        path = Path(args.tests or course.GRADER_TESTS / args.assignment) / "assignment.toml"
        known = sorted(p.parent.name for p in course.GRADER_TESTS.glob("*/assignment.toml"))
        print(f"error: validate knows no assignment {args.assignment!r} ({path} is missing); "
              f"known: {', '.join(known) or 'none'}", file=sys.stderr)  # fmt: skip
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.submission.is_dir():
        print(f"error: {args.submission} is not a folder", file=sys.stderr)
        return 2
    return validate.main(args.submission, spec, _sandbox(args), args.junit)


def cmd_grade(args: argparse.Namespace) -> int:
    from dlcourse.grading import runner
    from dlcourse.grading.sandbox import SandboxUnavailable

    try:
        spec = _spec(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or course.ROOT / "grades" / spec.name
    from dlcourse.grading import slurm

    if slurm.requested(args):
        return slurm.cmd_grade(args, spec, out)
    try:
        cohort = runner.grade_many(
            args.submissions, spec, out, args.jobs, args.force, _sandbox(args)
        )
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for sid, graded in sorted(cohort.items()):
        print(f"{sid}: {graded.score:g}/{graded.max_score:g} ({graded.status})")
    print(f"results: {out}/<submission>/results.json, summary.txt and report.html; "
          f"cohort: {out}/marks.csv and cohort.html")  # fmt: skip
    return 0


def cmd_autograde(args: argparse.Namespace) -> int:
    from dlcourse.grading import autograde, slurm

    if slurm.requested(args):
        try:
            return slurm.cmd_autograde(args, _spec(args))
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        spec = _spec(args)
        reports = autograde.autograde(
            args.assignment, spec, args.root, args.db, args.jobs, args.force, _sandbox(args)
        )
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # SandboxUnavailable too
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(autograde.table(reports))
    out = Path(args.root).resolve() / "grades" / args.assignment
    print(f"marks: {out}/marks_with_notebook.csv; feedback: {Path(args.root).resolve()}/feedback/")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dlcourse.grading import demo

    return demo.main(args.dir)
