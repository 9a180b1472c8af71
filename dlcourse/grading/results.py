"""Grading outputs: Gradescope-format results.json, a human summary, and the cohort CSV.

Each test has an `outcome`: passed, failed (computed and wrong) or error (could not be
computed: missing file, the student's code raised, timed out...). Errors are never a silent
0: the summary and the CSV say "error" and the reason is in the test's output.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def build(tests: list[dict], notes: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """The results.json document (Gradescope autograder format plus `extra_data`)."""
    gs_tests, cells = [], {}
    for t in tests:
        gs_tests.append(
            {
                "name": t["name"],
                "score": t["score"],
                "max_score": t["max_score"],
                "status": "passed" if t["outcome"] == "passed" else "failed",
                "output": t["output"] or (t["description"] if t["outcome"] == "passed" else ""),
                "visibility": "visible" if t["public"] else "after_published",
                "extra_data": {"outcome": t["outcome"], "grade_cell": t["grade_cell"]},
            }
        )
        cell = cells.setdefault(t["grade_cell"], {"score": 0.0, "max_score": 0.0, "errors": []})
        cell["score"] += t["score"]
        cell["max_score"] += t["max_score"]
        if t["outcome"] == "error":
            cell["errors"].append(f"{t['name']}: {t['output']}")
    errors = sum(t["outcome"] == "error" for t in tests)
    return {
        "score": sum(t["score"] for t in tests),
        "max_score": sum(t["max_score"] for t in tests),
        "output": "\n".join(notes),
        "visibility": "after_published",
        "stdout_visibility": "hidden",
        "tests": gs_tests,
        "extra_data": {
            **extra,
            "status": f"error ({errors} tests could not be computed)" if errors else "complete",
            "grade_cells": cells,
        },
    }


def failed_run(message: str, extra: dict[str, Any]) -> dict[str, Any]:
    """results.json for a submission whose grading could not run at all."""
    return {
        "score": 0.0,
        "max_score": 0.0,
        "output": f"error: {message}",
        "visibility": "after_published",
        "tests": [],
        "extra_data": {**extra, "status": f"error: {message}", "grade_cells": {}},
    }


UNSANDBOXED = "NOT SANDBOXED"


def mark_unsandboxed(doc: dict[str, Any]) -> None:
    """Say in the status (so in every table) that student code ran without containment."""
    extra = doc["extra_data"]
    extra["sandboxed"] = False
    if UNSANDBOXED not in extra["status"]:
        extra["status"] += f" - {UNSANDBOXED}"
    if UNSANDBOXED not in doc["output"]:
        note = f"{UNSANDBOXED}: graded with --unsandboxed; student code was not contained"
        doc["output"] = "\n".join(filter(None, [note, doc["output"]]))


def add_flags(doc: dict[str, Any], flags: list[str]) -> bool:
    """Add staff flags (copied weights...) to the results; returns whether any was new."""
    extra = doc["extra_data"]
    new = [f for f in flags if f not in extra.setdefault("flags", [])]
    if not new:
        return False
    extra["flags"] += new
    doc["output"] = "\n".join(filter(None, [doc["output"], *(f"FLAG: {f}" for f in new)]))
    if "FLAGGED" not in extra["status"]:
        extra["status"] += " - FLAGGED"
    return True


def summary(doc: dict[str, Any], title: str) -> str:
    """A short text a person reads: one line per test, errors spelled out."""
    lines = [f"{title}: {doc['score']:g}/{doc['max_score']:g} ({doc['extra_data']['status']})"]
    for t in doc["tests"]:
        outcome = t["extra_data"]["outcome"]
        mark = "error" if outcome == "error" else f"{t['score']:g}/{t['max_score']:g}"
        first = t["output"].splitlines()[0] if t["output"] else ""
        lines.append(f"  [{mark}] {t['name']}" + (f" - {first}" if outcome != "passed" else ""))
    if doc["output"]:
        lines += ["notes:", *(f"  {n}" for n in doc["output"].splitlines())]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def cohort_csv(docs: dict[str, dict[str, Any]]) -> str:
    """One row per submission: total, status, and each test's score or "error"."""
    names: list[str] = []
    for doc in docs.values():
        names += [t["name"] for t in doc["tests"] if t["name"] not in names]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["submission", "score", "max_score", "status", "sandboxed", "flags", *names])
    for sid, doc in sorted(docs.items()):
        by_name = {t["name"]: t for t in doc["tests"]}
        cells = []
        for n in names:
            t = by_name.get(n)
            if t is None or t["extra_data"]["outcome"] == "error":
                cells.append("error")
            else:
                cells.append(f"{t['score']:g}")
        extra = doc["extra_data"]
        sandboxed = "yes" if extra.get("sandboxed") else UNSANDBOXED
        row = [sid, f"{doc['score']:g}", f"{doc['max_score']:g}", extra["status"], sandboxed]
        w.writerow([*row, "; ".join(extra.get("flags", [])), *cells])
    return buf.getvalue()


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


def read(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
