"""pytest plugin loaded by the grader (`-p dlcourse.grading.plugin`) for one submission.

It provides the `student` fixture, requires `@points` on every test, and records each test as
a `TestResult`; the runner completes the `GradingResults` it writes. Outputs carry the failure
message only, never the hidden test's code: a bare `assert` shows as "a hidden check failed".

The `report` fixture is where tests record what they measured for the feedback report
(dlcourse.grading.measurements); it is written to measurements.pt next to the results after
the results themselves, so a measurement can neither change nor lose a mark.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from dlcourse.grading import measurements, spec
from dlcourse.grading.measurements import Measurements
from dlcourse.grading.results import GradingResults, Outcome, TestResult
from dlcourse.grading.sandbox import WorkerError
from dlcourse.grading.student import Student, StudentError


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("dlcourse grading")
    g.addoption("--submission", help="the submission folder")
    g.addoption("--assignment", help="assignment name")
    g.addoption("--results", help="where to write results.json")
    g.addoption("--public-only", action="store_true", help="run only @public tests")
    g.addoption("--no-sandbox", action="store_true", help="do not use bubblewrap")
    g.addoption("--progress", help="append a JSON line here as tests are collected and finish")


RECORDER = pytest.StashKey["Recorder"]()


class Recorder:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.tests: list[TestResult] = []
        self.student: Student | None = None
        self.measurements = Measurements()
        self.t0 = time.perf_counter()

    def measurements_path(self) -> Path | None:
        """measurements.pt next to the results (None when no results are written)."""
        out = self.config.getoption("--results")
        return Path(out).parent / measurements.FILE if out else None

    def get_student(self) -> Student:
        if self.student is None:
            opt = self.config.getoption
            tests_dir = Path(self.config.args[0]) if self.config.args else None
            s = spec.load(opt("--assignment"), tests_dir)
            self.student = Student(Path(opt("--submission")), s, not opt("--no-sandbox"))
        return self.student

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        missing = [i.nodeid for i in items if not hasattr(_function(i), "_dlcourse_points")]
        if missing:
            raise pytest.UsageError(f"tests without @points: {', '.join(missing)}")
        if config.getoption("--public-only"):
            keep = [i for i in items if getattr(_function(i), "_dlcourse_public", False)]
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep
        self.progress({"collected": len(items)})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> None:
        self.progress({"start": _name(item)})

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        rep = yield
        if rep.when == "call" or (rep.when == "setup" and not rep.passed):
            t = _record(item, rep, call)
            self.tests.append(t)
            self.progress({"test": t.name, "outcome": t.outcome, "output": t.output})
        return rep

    def progress(self, event: dict) -> None:
        """For a caller that shows progress while the tests run (`dlcourse validate`): the
        grader process's own output is read only once it has finished."""
        path = self.config.getoption("--progress")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        out = self.config.getoption("--results")
        if not out:
            return
        st = self.student
        notes = []
        if st is not None:
            notes.append(st.worker.note)
            notes += [f"notebook: {w}" for w in st.load_warnings]
            missing = st.spec.missing_files(st.path)
            notes += [f"missing file: {f}" for f in missing]
        graded = GradingResults(
            assignment=self.config.getoption("--assignment"),
            submission=self.config.getoption("--submission"),
            tests=self.tests,
            notes=notes,
            sandboxed=st.worker.sandboxed if st else None,
            timings={**(st.timings if st else {}), "total_s": self._elapsed()},
        )
        Path(out).write_text(graded.to_json())  # partial: the runner adds what it knows
        try:  # after the results: a measurement that hangs or crashes cannot lose a mark
            self.measurements.run_after_tests()
            if self.measurements.items or self.measurements.notes:
                self.measurements.write(self.measurements_path())
            for tb in self.measurements.tracebacks:  # outside any test's capture: grader.log
                print(f"not measured for the report: {tb}", file=sys.stderr)
        except OSError as exc:  # the report then shows the marks without plots
            print(f"measurements not written: {exc}", file=sys.stderr)
        finally:
            if st is not None:
                st.close()

    def _elapsed(self) -> float:
        return round(time.perf_counter() - self.t0, 3)


def _function(item: pytest.Item):
    return getattr(item, "function", None)


def _message(exc: BaseException) -> tuple[Outcome, str]:
    """(outcome, output) for a failed test, without the hidden test's source."""
    if isinstance(exc, StudentError | WorkerError):
        return "error", f"error: {exc}"
    if isinstance(exc, AssertionError):
        text = str(exc)
        text = text.split("\nassert ")[0] if not text.startswith("assert ") else ""
        lines = text.strip().splitlines()[:8]
        return "failed", "\n".join(lines)[:1000] or "a hidden check failed"
    return "error", f"error: {type(exc).__name__}: {str(exc)[:500]}"


def _name(item: pytest.Item) -> str:
    return f"{item.module.__name__.rsplit('.', 1)[-1]}::{item.name}"


def _record(item: pytest.Item, rep: pytest.TestReport, call: pytest.CallInfo) -> TestResult:
    fn = _function(item)
    max_score = getattr(fn, "_dlcourse_points", 0.0)
    outcome: Outcome
    if rep.passed:
        outcome, output = "passed", ""
    elif rep.skipped:
        outcome, output = "error", "error: skipped by the grader"
    else:
        outcome, output = _message(call.excinfo.value) if call.excinfo else ("error", "error")
    doc = (fn.__doc__ or "").strip().splitlines()
    return TestResult(
        name=_name(item),
        description=doc[0] if doc else "",
        max_score=max_score,
        score=max_score if outcome == "passed" else 0.0,
        outcome=outcome,
        output=output,
        public=bool(getattr(fn, "_dlcourse_public", False)),
        grade_cell=getattr(fn, "_dlcourse_grade_cell", None)
        or getattr(item.module, "GRADE_CELL", None),
    )


def pytest_configure(config: pytest.Config) -> None:
    recorder = Recorder(config)
    config.pluginmanager.register(recorder, "dlcourse-recorder")
    config.stash[RECORDER] = recorder
    stale = recorder.measurements_path()
    if stale is not None:  # an earlier grading's measurements never pass for this one's
        stale.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def student(request: pytest.FixtureRequest) -> Student:
    """The submission being graded (see grader_tests/README.md)."""
    return request.config.stash[RECORDER].get_student()


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> Measurements:
    """Where a test records what it measured for the feedback report; it never fails."""
    return request.config.stash[RECORDER].measurements
