"""Grading results as typed objects; Gradescope JSON, text, CSV and JUnit only at the edge.

Each test has an `outcome`: passed, failed (computed and wrong), error (could not be computed
because of the submission: a missing file, the student's code raised or ran out of memory), or
incomplete (stopped by a wall-clock safety limit: the grading machine may simply have been busy).
Errors are never a silent 0: the summary and the CSV say "error" and the reason is in the test's
output. An incomplete test is never a mark at all: the submission is "incomplete, regrade", its
total is not exported, and its cells wait for a person in the gradebook.

Everything that grades or reads grades works on `GradingResults`; only this module knows the
layout of results.json (Gradescope's format plus our `extra_data`), so the status text, the
sandbox warning and the flags are composed in one place and cannot drift between outputs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["passed", "failed", "error", "incomplete"]

UNSANDBOXED = "NOT SANDBOXED"
UNSANDBOXED_NOTE = f"{UNSANDBOXED}: graded with --unsandboxed; student code was not contained"
FLAGGED = "FLAGGED"
INCOMPLETE = "incomplete, regrade"
NOT_COMPUTED = ("error", "incomplete")  # outcomes that are no verdict on the student's work


@dataclass
class TestResult:
    """One hidden test's result, as the plugin recorded it."""

    __test__ = False  # a result, not a pytest test class

    name: str
    description: str
    max_score: float
    score: float
    outcome: Outcome
    output: str  # the failure message shown to the student ("" when passed)
    public: bool
    grade_cell: str | None

    def to_gradescope(self) -> dict[str, Any]:
        """Gradescope's test entry: a passed test shows its description as its output; a
        failed test's description (what it checks, for the report) is in `extra_data`."""
        passed = self.outcome == "passed"
        extra: dict[str, Any] = {"outcome": self.outcome, "grade_cell": self.grade_cell}
        if self.description and not passed:
            extra["description"] = self.description
        return {
            "name": self.name,
            "score": self.score,
            "max_score": self.max_score,
            "status": "passed" if passed else "failed",
            "output": self.output or (self.description if passed else ""),
            "visibility": "visible" if self.public else "after_published",
            "extra_data": extra,
        }

    @classmethod
    def from_gradescope(cls, t: Mapping[str, Any]) -> TestResult:
        """Inverse of `to_gradescope` (a passed test's output is read back as its description;
        older results.json files hold no failed test's description: it reads as "")."""
        extra = t.get("extra_data", {})
        outcome = extra.get("outcome") or ("passed" if t.get("status") == "passed" else "failed")
        text = t.get("output", "")
        passed = outcome == "passed"
        return cls(
            name=t["name"],
            description=text if passed else extra.get("description", ""),
            max_score=t["max_score"],
            score=t["score"],
            outcome=outcome,
            output="" if passed else text,
            public=t.get("visibility") == "visible",
            grade_cell=extra.get("grade_cell"),
        )


@dataclass
class CellGrade:
    """The isolated tests' total for one notebook cell (what goes into the gradebook)."""

    score: float = 0.0
    max_score: float = 0.0
    errors: list[str] = field(default_factory=list)  # "test: why", for manual grading
    incomplete: bool = False  # a test of the cell was stopped by a time limit: regrade


@dataclass
class GradingResults:
    """One submission's grading: the tests, or why grading could not run at all (`failure`).

    `sandboxed` is None only in results.json files of older runs that did not record it.
    `weights_sha256` is None until the weight files were hashed (a submission refused at
    intake never is), and `timings` None when no grader process ran. `stopped` says that
    `failure` was a safety stop (the whole grader ran out of wall-clock time), not the
    submission's fault.
    """

    assignment: str
    submission: str
    tests: list[TestResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sandboxed: bool | None = None
    failure: str | None = None
    fingerprint: str | None = None
    weights_sha256: dict[str, str] | None = None
    flags: list[str] = field(default_factory=list)
    timings: dict[str, float] | None = None
    stopped: bool = False

    @property
    def score(self) -> float:
        return sum((t.score for t in self.tests), 0.0)

    @property
    def max_score(self) -> float:
        return sum((t.max_score for t in self.tests), 0.0)

    @property
    def errors(self) -> int:
        """How many tests could not be computed (never counted as a plain 0)."""
        return sum(t.outcome == "error" for t in self.tests)

    @property
    def stopped_tests(self) -> int:
        """How many tests a wall-clock safety limit stopped (to be graded again, never a 0)."""
        return sum(t.outcome == "incomplete" for t in self.tests)

    @property
    def incomplete(self) -> bool:
        """Whether a safety stop left this grading unfinished: no total may be taken from it."""
        return self.stopped or self.stopped_tests > 0

    @property
    def status(self) -> str:
        """The one-line status every table shows, with what staff must not miss appended."""
        if self.failure is not None:
            text = f"{INCOMPLETE}: {self.failure}" if self.stopped else f"error: {self.failure}"
        elif self.stopped_tests:
            text = f"{INCOMPLETE} ({self.stopped_tests} tests stopped by a time limit)"
        elif self.errors:
            text = f"error ({self.errors} tests could not be computed)"
        else:
            text = "complete"
        if self.sandboxed is False:
            text += f" - {UNSANDBOXED}"
        if self.flags:
            text += f" - {FLAGGED}"
        return text

    @property
    def all_notes(self) -> list[str]:
        """What a reader is told besides the tests: no sandbox, why grading failed, the
        grader's notes, then the flags (results.json's top-level `output`, line by line)."""
        body = [*([self.failure_line] if self.failure is not None else []), *self.notes]
        body += [f"FLAG: {f}" for f in self.flags]
        # the worker's own note already says NOT SANDBOXED when it ran: say it once
        warn = self.sandboxed is False and UNSANDBOXED not in "\n".join(body)
        return [UNSANDBOXED_NOTE, *body] if warn else body

    @property
    def failure_line(self) -> str:
        """`failure` as the notes show it: an error, or a safety stop to grade again."""
        return f"{INCOMPLETE if self.stopped else 'error'}: {self.failure}"

    def grade_cells(self) -> dict[str | None, CellGrade]:
        """Per gradebook cell (a test module's GRADE_CELL; None when it names none)."""
        cells: dict[str | None, CellGrade] = {}
        for t in self.tests:
            cell = cells.setdefault(t.grade_cell, CellGrade())
            cell.score += t.score
            cell.max_score += t.max_score
            if t.outcome in NOT_COMPUTED:
                cell.errors.append(f"{t.name}: {t.output}")
            cell.incomplete |= t.outcome == "incomplete"
        return cells

    def add_flags(self, flags: list[str]) -> bool:
        """Add staff flags (copied weights...); returns whether any was new, i.e. whether the
        written results are now out of date."""
        new = [f for f in dict.fromkeys(flags) if f not in self.flags]
        self.flags += new
        return bool(new)

    def replace_flags(self, flags: list[str]) -> bool:
        """Set the flags to `flags` (a cohort's sharing is recomputed on every run); returns
        whether they changed, i.e. whether the written results are now out of date."""
        new = list(dict.fromkeys(flags))
        changed = new != self.flags
        self.flags = new
        return changed

    # -- the edge: Gradescope's results.json -------------------------------------------------

    def to_gradescope(self) -> dict[str, Any]:
        """The results.json document (Gradescope autograder format plus `extra_data`)."""
        doc: dict[str, Any] = {
            "score": self.score,
            "max_score": self.max_score,
            "output": "\n".join(self.all_notes),
            "visibility": "after_published",
        }
        if self.failure is None:
            doc["stdout_visibility"] = "hidden"
        doc["tests"] = [t.to_gradescope() for t in self.tests]
        extra: dict[str, Any] = {
            "assignment": self.assignment,
            "submission": self.submission,
            "sandboxed": self.sandboxed,
        }
        if self.timings is not None:
            extra["timings"] = dict(self.timings)
        extra["status"] = self.status
        extra["grade_cells"] = {
            cell: {"score": g.score, "max_score": g.max_score, "errors": g.errors}
            | ({"incomplete": True} if g.incomplete else {})
            for cell, g in self.grade_cells().items()
        }
        if self.stopped:
            extra["stopped"] = True
        if self.fingerprint is not None:
            extra["fingerprint"] = self.fingerprint
        if self.weights_sha256 is not None:
            extra["weights_sha256"] = dict(self.weights_sha256)
        if self.flags:
            extra["flags"] = list(self.flags)
        doc["extra_data"] = extra
        return doc

    @classmethod
    def from_gradescope(cls, doc: Mapping[str, Any]) -> GradingResults:
        """Read a results.json document back, including those written by older runs (which
        may lack `sandboxed`, `fingerprint`, `weights_sha256`, `flags` or `timings`)."""
        extra = doc.get("extra_data", {})
        flags = list(extra.get("flags", []))
        sandboxed = extra.get("sandboxed")
        status = extra.get("status", "complete")
        stopped = bool(extra.get("stopped", False))
        base = _strip_suffixes(status, f" - {UNSANDBOXED}", f" - {FLAGGED}")  # derived again
        prefix = f"{INCOMPLETE}: " if stopped else "error: "
        failure = base.removeprefix(prefix) if base.startswith(prefix) else None
        text = doc.get("output", "")
        if sandboxed is False:
            text = _strip_line(text, UNSANDBOXED_NOTE, first=True)
        if failure is not None:
            text = _strip_line(text, f"{prefix}{failure}", first=True)
        text = _strip_line(text, "\n".join(f"FLAG: {f}" for f in flags), first=False)
        return cls(
            assignment=extra.get("assignment", ""),
            submission=extra.get("submission", ""),
            tests=[TestResult.from_gradescope(t) for t in doc.get("tests", [])],
            notes=text.split("\n") if text else [],
            sandboxed=sandboxed,
            failure=failure,
            fingerprint=extra.get("fingerprint"),
            weights_sha256=extra.get("weights_sha256"),
            flags=flags,
            timings=extra.get("timings"),
            stopped=stopped,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_gradescope(), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> GradingResults:
        return cls.from_gradescope(json.loads(Path(path).read_text()))

    # -- the edge: what people read ----------------------------------------------------------

    def summary(self, title: str) -> str:
        """A short text a person reads: one line per test, errors spelled out."""
        total = "incomplete" if self.incomplete else f"{self.score:g}"
        lines = [f"{title}: {total}/{self.max_score:g} ({self.status})"]
        for t in self.tests:
            mark = t.outcome if t.outcome in NOT_COMPUTED else f"{t.score:g}/{t.max_score:g}"
            first = t.output.splitlines()[0] if t.output else ""
            lines.append(f"  [{mark}] {t.name}" + (f" - {first}" if t.outcome != "passed" else ""))
        notes = "\n".join(self.all_notes).splitlines()
        if notes:
            lines += ["notes:", *(f"  {n}" for n in notes)]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path, title: str) -> None:
        """summary.txt, then results.json (whose presence means "graded": see grade_cached)."""
        write_atomic(Path(out_dir) / "summary.txt", self.summary(title))
        write_atomic(Path(out_dir) / "results.json", self.to_json())


def cohort_csv(results: Mapping[str, GradingResults]) -> str:
    """One row per submission: total, status, and each test's score, "error" or "incomplete".

    A submission a safety stop left unfinished has no total ("incomplete"): a number there
    would be taken for its mark."""
    names: list[str] = []
    for r in results.values():
        names += [t.name for t in r.tests if t.name not in names]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["submission", "score", "max_score", "status", "sandboxed", "flags", *names])
    for sid, r in sorted(results.items()):
        by_name = {t.name: t for t in r.tests}
        cells = [
            "error" if t is None else t.outcome if t.outcome in NOT_COMPUTED else f"{t.score:g}"
            for t in map(by_name.get, names)
        ]
        sandboxed = "yes" if r.sandboxed else UNSANDBOXED
        score = "incomplete" if r.incomplete else f"{r.score:g}"
        row = [sid, score, f"{r.max_score:g}", r.status, sandboxed, "; ".join(r.flags)]
        w.writerow([*row, *cells])
    return buf.getvalue()


def junit(result: GradingResults) -> str:
    """JUnit XML of the tests run (names and messages only, as in feedback), for CI."""
    suite = ET.Element("testsuite", name="dlcourse-validate", tests=str(len(result.tests)))
    suite.set("failures", str(sum(t.outcome != "passed" for t in result.tests)))
    for t in result.tests:
        case = ET.SubElement(suite, "testcase", name=t.name, classname="validate")
        if t.outcome != "passed":
            ET.SubElement(case, "failure", message=t.output[:200]).text = t.output
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _strip_suffixes(text: str, *suffixes: str) -> str:
    """`text` without any of `suffixes` at its end, in whatever order they were appended."""
    while any(text.endswith(s) for s in suffixes):
        text = next(text.removesuffix(s) for s in suffixes if text.endswith(s))
    return text


def _strip_line(text: str, part: str, first: bool) -> str:
    """`text` without `part` as its whole first (or last) lines, if it is there."""
    if not part:
        return text
    if text == part:
        return ""
    if first and text.startswith(part + "\n"):
        return text[len(part) + 1 :]
    if not first and text.endswith("\n" + part):
        return text[: -len(part) - 1]
    return text
