"""`dlcourse validate`: a student's check of one submission before the deadline.

It runs with the course's grading engine, as grading does: the assignment's @public tests
(files, shapes, loading, limits; never accuracy) in a grader process, the student's code in the
sandboxed worker. Every assignment also gets checks of its own first: the folder holds nothing
the grader refuses (links, special files, oversized files), the submitted files are there, the
notebook is a notebook the grader can read, each weight file loads as a state_dict
with `weights_only=True`; and an assignment without @public tests (the tutorials and quizzes)
gets the one check that makes sense for all of them, that the notebook's definitions load in
the grader's student process as the hidden tests will need them. Nothing here knows a hidden
answer.

Each check is printed as it completes, and while one runs (CW1's timing of the model on 10,000
images takes half a minute or more) a line every few seconds says which; a missing weight file
is said once, not again by every check that needs it.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from dlcourse.grading.results import GradingResults, TestResult
from dlcourse.grading.spec import Spec

MISSING_WEIGHTS = "missing weight file "  # how the engine says it (student.py, worker.py)
QUIET_S = 5.0  # longest silence before a line saying what is still running


def probe_loaded(ns):  # runs in the student process: loading the definitions is the check
    return True


class Console:
    """Prints lines, and says what is still running whenever it has been quiet for QUIET_S."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = self.since = time.monotonic()
        self.doing = ""
        self.done = threading.Event()
        threading.Thread(target=self._beat, daemon=True).start()

    def say(self, text: str, doing: str = "") -> None:
        """Print `text`; `doing` is what runs from now on (named while it stays quiet)."""
        with self.lock:
            print(text, flush=True)
            self.last = time.monotonic()
            if doing:
                self.doing, self.since = doing, self.last

    def _beat(self) -> None:
        while not self.done.wait(0.5):
            with self.lock:
                now = time.monotonic()
                if self.doing and now - self.last >= QUIET_S:
                    print(f"      ... {self.doing} ({now - self.since:.0f} s)", flush=True)
                    self.last = now

    def close(self) -> None:
        self.done.set()


class Validation:
    """The checks of one run, printed as they complete; `problems` says what is not ready."""

    def __init__(self, folder: Path, spec: Spec, console: Console) -> None:
        self.folder, self.spec, self.console = folder, spec, console
        self.checks: list[TestResult] = []
        self.problems: list[str] = []
        self.missing = spec.missing_files(folder)

    def record(self, name: str, message: str = "", problems: list[str] | None = None) -> None:
        """A check of this module's own: passed when `message` is empty."""
        outcome = "failed" if message else "passed"
        self.checks.append(TestResult(name, "", 0.0, 0.0, outcome, message, True, None))
        self.show(name, outcome, message)
        if message:
            self.problems += problems or [f"{name}: {message}"]

    def brief(self, output: str) -> str | None:
        """The one-line reason of a check that failed only for a missing weight file (said
        once, by the files check), else None."""
        needs = [w for w in self.missing if f"{MISSING_WEIGHTS}{w}" in output]
        return f"needs {', '.join(needs)} (missing: see the files check)" if needs else None

    def show(self, name: str, outcome: str, output: str) -> None:
        if outcome == "passed":
            self.console.say(f"PASS  {name}")
        elif brief := self.brief(output):
            self.console.say(f"FAIL  {name}: {brief}")
        else:
            self.console.say(f"FAIL  {name}\n      {output}")

    def public_test(self, event: dict) -> None:
        """A progress event of the grader process (runner.grade_submission)."""
        if "collected" in event:
            n = event["collected"]
            self.console.say(f"{n} public check{'s' * (n != 1)} of {self.spec.name}:")
        elif "start" in event:
            with self.console.lock:
                self.console.doing = f"running {event['start']}"
                self.console.since = time.monotonic()
        else:
            self.show(event["test"], event["outcome"], event["output"])

    def own_checks(self) -> bool:
        """Files, the notebook's form, the weight files; whether the notebook can be read."""
        from dlcourse.grading import submission
        from dlcourse.grading.student import Student, StudentError, notebook

        refused = submission.problems(self.folder, self.spec.notebook, self.spec.weights)
        if refused:  # as the grader refuses it: links, special files, oversized files
            self.record("submission can be graded", "; ".join(refused), refused)
            return False
        advice = {self.spec.notebook: "submit the notebook under this name"}
        self.record(
            f"files: {', '.join([self.spec.notebook, *self.spec.weights])}",
            "; ".join(f"{f} is missing" for f in self.missing),
            [f"missing {f}: {advice.get(f, 'save it next to the notebook')}"
             for f in self.missing],
        )  # fmt: skip
        nb = self.folder / self.spec.notebook
        if not nb.is_file():
            return False
        try:
            _, warnings = notebook.definitions(nb)
        except notebook.NotebookError as exc:
            self.record("notebook", str(exc).replace(f"{self.folder}/", ""))
            return False
        self.record("notebook", "; ".join(warnings))
        checker = Student(self.folder, self.spec, sandbox=False)  # reads files, runs nothing
        for w in (w for w in self.spec.weights if w not in self.missing):
            try:
                checker.state_dict(w)
                self.record(f"weights {w}")
            except StudentError as exc:
                self.record(f"weights {w}", str(exc))
        checker.close()
        return True

    def public_tests(self, sandbox: bool) -> GradingResults:
        """The @public tests in a grader process, each printed as it finishes."""
        from dlcourse.grading import runner

        starting = "starting the grader process and your code's process"
        self.console.say(f"{starting} ...", doing=starting)
        with tempfile.TemporaryDirectory() as tmp:
            graded = runner.grade_submission(
                self.folder, self.spec, Path(tmp), sandbox, public_only=True,
                progress=self.public_test,
            )  # fmt: skip
        self.problems += [f"the checks could not run: {graded.failure}"] if graded.failure else []
        for t in (t for t in graded.tests if t.outcome != "passed"):
            if brief := self.brief(t.output):
                t.output = brief  # the JUnit report too
            else:
                self.problems.append(f"{t.name}: {t.output}")
        return graded

    def definitions_load(self, sandbox: bool) -> list[str]:
        """The notebook's definitions loaded in the grader's student process; its notes."""
        from dlcourse.grading.student import Student, StudentError

        name = "definitions load in the grader's process"
        self.console.say("starting your code's process to load the notebook ...", doing=name)
        student = Student(self.folder, self.spec, sandbox=sandbox)
        try:
            student.run(probe_loaded)
        except StudentError as exc:
            self.record(name, str(exc))
            return []
        finally:
            student.close()
        self.record(name, "; ".join(student.load_warnings))
        return [student.worker.note]


def _has_public_tests(spec: Spec) -> bool:
    """In the kit, public_checks/<a>/ holds test modules only where there are public tests;
    in the repository the grader process says how many it collected."""
    return any(spec.tests_dir.glob("test_*.py"))


def main(folder: Path, spec: Spec, sandbox_asked: bool, junit: Path | None) -> int:
    """`dlcourse validate FOLDER --assignment A`: 0 when ready, 1 when not (each reason said)."""
    console = Console()
    try:
        return _validate(folder, spec, sandbox_asked, junit, console)
    finally:
        console.close()


def _validate(
    folder: Path, spec: Spec, sandbox_asked: bool, junit: Path | None, console: Console
) -> int:
    console.say(f"validating {folder} for {spec.name}", doing="loading the grading engine")
    from dlcourse.grading import results  # after the first line: these import torch
    from dlcourse.grading.sandbox import bwrap_works

    sandbox = sandbox_asked and bwrap_works()
    if sandbox:
        console.say("your code runs in a bubblewrap sandbox, as in grading")
    else:
        why = "bubblewrap is not available here" if sandbox_asked else "--unsandboxed"
        console.say(f"NOT SANDBOXED ({why}): your code runs in a limited process only")
    v = Validation(folder, spec, console)
    graded = GradingResults(spec.name, str(folder), sandboxed=sandbox)
    readable = v.own_checks()
    if readable and _has_public_tests(spec):
        graded = v.public_tests(sandbox)
    if readable and not graded.tests and not graded.failure:
        graded.notes = v.definitions_load(sandbox)
    console.doing = ""
    notes = [n for n in graded.all_notes if not n.startswith("missing file:")]
    for note in "\n".join(notes).splitlines():
        if sandbox or "NOT SANDBOXED" not in note:  # said in the first line
            console.say(f"note: {note}")
    graded.tests = [*v.checks, *graded.tests]
    if junit:
        results.write_atomic(junit, results.junit(graded))
    console.say(f"{'OK' if not v.problems else 'NOT READY'}: {folder} for {spec.name}")
    for p in v.problems:
        console.say("  - " + p.strip().replace("\n", "\n    "))
    return 0 if not v.problems else 1
