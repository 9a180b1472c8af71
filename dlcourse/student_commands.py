"""The `dlcourse` commands students have too (`data`, `check`): one definition for the course's
CLI and the student kit's, which ships without the staff commands."""

from __future__ import annotations

import argparse
import sys


def _cmd_data(args: argparse.Namespace) -> int:
    from dlcourse import data

    try:
        path = data.find_fashion_mnist(download=args.download)
        if not args.quiet:
            ds = data.load_fashion_mnist(smoke=False)
            sizes = ", ".join(f"{k} {len(v)}" for k, v in vars(ds).items())
            print(f"Fashion-MNIST at {path} (checksums verified): {sizes}")
    except (data.DataNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    import gpu_check

    return gpu_check.main(["--json"] if args.json else [])


def add_student_commands(sub: argparse._SubParsersAction) -> None:
    """Register `data` and `check` on a `dlcourse` parser."""
    s = sub.add_parser("data", help="find (or download) Fashion-MNIST and verify it")
    s.add_argument("--download", action="store_true", help="download with torchvision if missing")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_cmd_data)

    s = sub.add_parser("check", help="what gpu_check.py prints: devices, versions, speed")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_check)
