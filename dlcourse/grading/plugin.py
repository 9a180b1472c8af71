"""pytest plugin loaded by the grader (`-p dlcourse.grading.plugin`) for one submission.

It provides the `student` fixture, requires `@points` on every test, and records each test as
a `TestResult`; the runner completes the `GradingResults` it writes. Outputs carry the failure
message only, never the hidden test's code: a bare `assert` shows as "a hidden check failed".

The `report` fixture is where tests record what they measured for the feedback report
(dlcourse.grading.measurements); it is written to measurements.pt next to the results after
the results themselves, so a measurement can neither change nor lose a mark.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import pytest

from dlcourse.grading import MarkWithheld, measurements, spec
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
    g.addoption(
        "--time-scale", type=float, default=1.0, help="wall-clock limits this many times longer"
    )
    g.addoption("--progress", help="append a JSON line here as tests are collected and finish")


RECORDER = pytest.StashKey["Recorder"]()


class Recorder:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.tests: list[TestResult] = []
        self.flags: list[str] = []  # for staff: raised by tests through the `flags` fixture
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
            scale = opt("--time-scale")
            if scale != 1.0:
                s = dataclasses.replace(s, limits=s.limits.with_time_scale(scale))
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
        if st is not None and not self.config.getoption("--public-only"):
            self.flags += _provenance_flags(st)
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
            flags=list(dict.fromkeys(self.flags)),
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


def _provenance_flags(st: Student) -> list[str]:
    """Course weights among the submitted files, for staff (the tests that mark what such a
    file would earn withhold it: Student.own_weights)."""
    found = []
    for file in st.spec.weights:
        if (st.path / file).is_file():
            try:
                sd = st.state_dict(file)
            except StudentError:
                sd = None  # not a state_dict of floats: still compared byte for byte
            found += [m.text for m in st.matches(file, sd)]
    return found


def _function(item: pytest.Item):
    return getattr(item, "function", None)


def _message(exc: BaseException) -> tuple[Outcome, str]:
    """(outcome, output) for a failed test, without the hidden test's source."""
    if isinstance(exc, StudentError | WorkerError) and exc.safety_stop:
        return "incomplete", f"not computed: {exc}; a safety stop, not a mark: graded again"
    if isinstance(exc, StudentError | WorkerError):
        return "error", f"error: {exc}"
    if isinstance(exc, MarkWithheld):
        return "error", f"withheld for a person to decide: {exc}"
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
def flags(request: pytest.FixtureRequest) -> list[str]:
    """Append what staff must look at (never shown to the student): it becomes a FLAG in the
    summary, the CSVs and the gradebook comment."""
    return request.config.stash[RECORDER].flags


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> Measurements:
    """Where a test records what it measured for the feedback report; it never fails."""
    return request.config.stash[RECORDER].measurements
