"""The typed grading results and their renderers: results.json, summary, cohort CSV, JUnit.

results.json files already on disk were written by the dict-based code; GRADED and REFUSED below
are what that code (`results.build`/`failed_run`/`add_flags`/`mark_unsandboxed`) wrote, so the
model must read them and write them back unchanged.
"""

import copy
import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from dlcourse.grading import results
from dlcourse.grading.results import GradingResults, TestResult

SANDBOX_NOTE = "student code ran in a bubblewrap sandbox (no network, no grader files)"
WORKER_UNSANDBOXED = (
    "NOT SANDBOXED: graded with --unsandboxed; student code ran in a limited process only"
)
ERROR_OUTPUT = "error: probe_logits: missing weight file toy.pt"

GRADED = {
    "score": 2.0,
    "max_score": 5.0,
    "output": f"{SANDBOX_NOTE}\nmissing file: toy.pt\n"
    "FLAG: toy.pt is identical to the weights submitted by bob",
    "visibility": "after_published",
    "stdout_visibility": "hidden",
    "tests": [
        {
            "name": "test_toy::test_add",
            "score": 1.0,
            "max_score": 1.0,
            "status": "passed",
            "output": "add() adds tensors.",
            "visibility": "visible",
            "extra_data": {"outcome": "passed", "grade_cell": "toy_hidden"},
        },
        {
            "name": "test_toy::test_accuracy",
            "score": 0.0,
            "max_score": 2.0,
            "status": "failed",
            "output": "accuracy 0.355 is below 0.95\nsecond line",
            "visibility": "after_published",
            "extra_data": {"outcome": "failed", "grade_cell": "toy_hidden"},
        },
        {
            "name": "test_toy::test_logits_shape",
            "score": 0.0,
            "max_score": 1.0,
            "status": "failed",
            "output": ERROR_OUTPUT,
            "visibility": "visible",
            "extra_data": {"outcome": "error", "grade_cell": "toy_hidden"},
        },
        {
            "name": "test_extra::test_bonus",
            "score": 1.0,
            "max_score": 1.0,
            "status": "passed",
            "output": "No GRADE_CELL here.",
            "visibility": "after_published",
            "extra_data": {"outcome": "passed", "grade_cell": None},
        },
    ],
    "extra_data": {
        "assignment": "toy",
        "submission": "alice",
        "sandboxed": True,
        "timings": {"start_s": 1.5, "total_s": 4.25},
        "status": "error (1 tests could not be computed) - FLAGGED",
        "grade_cells": {
            "toy_hidden": {
                "score": 1.0,
                "max_score": 4.0,
                "errors": [f"test_toy::test_logits_shape: {ERROR_OUTPUT}"],
            },
            "null": {"score": 1.0, "max_score": 1.0, "errors": []},  # json's None key
        },
        "fingerprint": "f" * 64,
        "weights_sha256": {"toy.pt": "a" * 64},
        "flags": ["toy.pt is identical to the weights submitted by bob"],
    },
}

REFUSAL = "submission refused: toy.pt is a symbolic link; submit the file itself"
REFUSED = {
    "score": 0.0,
    "max_score": 0.0,
    "output": f"NOT SANDBOXED: graded with --unsandboxed; student code was not contained\n"
    f"error: {REFUSAL}",
    "visibility": "after_published",
    "tests": [],
    "extra_data": {
        "assignment": "toy",
        "submission": "carol",
        "sandboxed": False,
        "status": f"error: {REFUSAL} - NOT SANDBOXED",
        "grade_cells": {},
    },
}


def _test(name: str, outcome: str = "passed", cell: str | None = "c1", points: float = 1.0):
    passed = outcome == "passed"
    return TestResult(
        name=name,
        description=f"{name} works." if passed else "",
        max_score=points,
        score=points if passed else 0.0,
        outcome=outcome,
        output="" if passed else f"{'error: ' if outcome == 'error' else ''}{name} is wrong",
        public=name.endswith("public"),
        grade_cell=cell,
    )


def _graded(**kw) -> GradingResults:
    tests = [_test("t::public"), _test("t::b", "failed"), _test("t::c", "error", cell=None)]
    return GradingResults("toy", "alice", **{"tests": tests, "sandboxed": True, **kw})


def _on_disk(graded: GradingResults) -> dict:
    return json.loads(graded.to_json())


def test_old_results_json_reads_and_writes_back_unchanged():
    for doc in (GRADED, REFUSED):
        assert _on_disk(GradingResults.from_gradescope(doc)) == doc


def test_old_results_json_reads_into_the_model():
    graded = GradingResults.from_gradescope(GRADED)
    assert (graded.assignment, graded.submission, graded.sandboxed) == ("toy", "alice", True)
    assert graded.notes == [SANDBOX_NOTE, "missing file: toy.pt"]  # flags are kept apart
    assert graded.flags == ["toy.pt is identical to the weights submitted by bob"]
    assert graded.failure is None and graded.fingerprint == "f" * 64
    assert graded.weights_sha256 == {"toy.pt": "a" * 64}
    assert graded.timings == {"start_s": 1.5, "total_s": 4.25}
    assert (graded.score, graded.max_score, graded.errors) == (2.0, 5.0, 1)
    add, acc, shape, bonus = graded.tests
    assert add.outcome == "passed" and add.public and add.description == "add() adds tensors."
    assert add.output == ""  # a passed test's Gradescope output is its description
    assert acc.outcome == "failed" and not acc.public and acc.output.startswith("accuracy 0.355")
    assert shape.outcome == "error" and shape.output == ERROR_OUTPUT
    assert bonus.grade_cell is None

    refused = GradingResults.from_gradescope(REFUSED)
    assert refused.failure == REFUSAL and refused.notes == [] and refused.tests == []
    assert refused.sandboxed is False and refused.status == f"error: {REFUSAL} - NOT SANDBOXED"


def test_results_json_from_before_sandbox_and_flags_were_recorded():
    """The first engine wrote no `sandboxed`, `fingerprint`, `weights_sha256` or `flags`."""
    oldest = {
        "score": 0.0,
        "max_score": 0.0,
        "output": "error: the grader could not run (boom)",
        "visibility": "after_published",
        "tests": [],
        "extra_data": {
            "assignment": "toy",
            "submission": "subs/dave",
            "status": "error: the grader could not run (boom)",
            "grade_cells": {},
        },
    }
    graded = GradingResults.from_gradescope(oldest)
    assert graded.sandboxed is None and graded.fingerprint is None and graded.flags == []
    assert graded.failure == "the grader could not run (boom)" and graded.notes == []
    assert graded.status == "error: the grader could not run (boom)"  # no unknown claimed
    assert _on_disk(graded) == {**oldest, "extra_data": {**oldest["extra_data"], "sandboxed": None}}


def test_old_unsandboxed_and_flagged_status_reads_in_either_order():
    """The old code appended " - FLAGGED" and " - NOT SANDBOXED" in the order they arose."""
    doc = copy.deepcopy(GRADED)
    doc["output"] = doc["output"].replace(SANDBOX_NOTE, WORKER_UNSANDBOXED)
    doc["extra_data"]["sandboxed"] = False
    doc["extra_data"]["status"] += " - NOT SANDBOXED"  # flagged first, then unsandboxed
    graded = GradingResults.from_gradescope(doc)
    assert graded.failure is None and graded.sandboxed is False
    assert graded.notes[0] == WORKER_UNSANDBOXED and len(graded.notes) == 2
    assert graded.status == "error (1 tests could not be computed) - NOT SANDBOXED - FLAGGED"
    assert _on_disk(graded)["output"] == doc["output"]  # the worker already said it: once


def test_model_round_trip():
    graded = _graded(
        notes=["a note", "notebook: line 3 raised"],
        fingerprint="abc",
        weights_sha256={"toy.pt": "123"},
        flags=["copied"],
        timings={"total_s": 1.0},
    )
    assert GradingResults.from_gradescope(_on_disk(graded)) == graded
    refused = GradingResults("toy", "carol", sandboxed=False, failure="refused: a link")
    assert GradingResults.from_gradescope(_on_disk(refused)) == refused


def test_status_strings():
    assert _graded(tests=[_test("t::a")]).status == "complete"
    assert _graded().status == "error (1 tests could not be computed)"
    assert (
        _graded(sandboxed=False).status == "error (1 tests could not be computed) - NOT SANDBOXED"
    )
    assert _graded(flags=["x"]).status == "error (1 tests could not be computed) - FLAGGED"
    both = _graded(tests=[], sandboxed=False, flags=["x"])
    assert both.status == "complete - NOT SANDBOXED - FLAGGED"
    failed = _graded(tests=[], failure="the grader could not run (boom)", sandboxed=False)
    assert failed.status == "error: the grader could not run (boom) - NOT SANDBOXED"


def test_failed_run():
    graded = GradingResults("toy", "dave", sandboxed=True, failure="submission refused: why")
    doc = _on_disk(graded)
    assert (doc["score"], doc["max_score"], doc["tests"]) == (0, 0, [])
    assert doc["output"] == "error: submission refused: why"
    assert doc["extra_data"]["status"] == "error: submission refused: why"
    assert doc["extra_data"]["grade_cells"] == {} and "stdout_visibility" not in doc
    assert graded.summary("toy - dave") == (
        "toy - dave: 0/0 (error: submission refused: why)\n"
        "notes:\n  error: submission refused: why\n"
    )


def test_unsandboxed_is_said_once_and_flags_are_noted():
    graded = _graded(sandboxed=False, notes=["a note"])
    assert graded.all_notes == [results.UNSANDBOXED_NOTE, "a note"]
    assert _graded(sandboxed=False, notes=[WORKER_UNSANDBOXED]).all_notes == [WORKER_UNSANDBOXED]
    assert graded.add_flags(["copied", "copied"]) and not graded.add_flags(["copied"])
    assert graded.flags == ["copied"] and graded.all_notes[-1] == "FLAG: copied"
    assert _on_disk(graded)["extra_data"]["flags"] == ["copied"]
    assert "flags" not in _on_disk(_graded())["extra_data"]  # as the old code: only when any


def test_grade_cells():
    cells = _graded().grade_cells()
    assert set(cells) == {"c1", None}
    assert (cells["c1"].score, cells["c1"].max_score, cells["c1"].errors) == (1.0, 2.0, [])
    assert cells[None].errors == ["t::c: error: t::c is wrong"]


def test_summary():
    text = _graded(notes=["a note"], flags=["copied"]).summary("toy - alice")
    assert text == (
        "toy - alice: 1/3 (error (1 tests could not be computed) - FLAGGED)\n"
        "  [1/1] t::public\n"
        "  [0/1] t::b - t::b is wrong\n"
        "  [error] t::c - error: t::c is wrong\n"
        "notes:\n  a note\n  FLAG: copied\n"
    )


def test_cohort_csv_columns():
    cohort = {
        "bob": _graded(tests=[_test("t::public"), _test("t::d", points=2)], flags=["x", "y"]),
        "alice": _graded(sandboxed=False),
        "carol": GradingResults("toy", "carol", sandboxed=True, failure="refused"),
    }
    rows = list(csv.reader(io.StringIO(results.cohort_csv(cohort))))
    assert rows[0] == [
        "submission", "score", "max_score", "status", "sandboxed", "flags",
        "t::public", "t::d", "t::b", "t::c",
    ]  # fmt: skip
    assert rows[1] == [
        "alice", "1", "3", "error (1 tests could not be computed) - NOT SANDBOXED",
        "NOT SANDBOXED", "", "1", "error", "0", "error",
    ]  # fmt: skip
    assert rows[2] == [
        "bob",
        "3",
        "3",
        "complete - FLAGGED",
        "yes",
        "x; y",
        "1",
        "2",
        "error",
        "error",
    ]
    assert rows[3] == ["carol", "0", "0", "error: refused", "yes", "", *["error"] * 4]


def test_junit():
    suite = ET.fromstring(results.junit(_graded()))
    assert suite.tag == "testsuite" and suite.get("name") == "dlcourse-validate"
    assert suite.get("tests") == "3" and suite.get("failures") == "2"
    cases = {c.get("name"): c.find("failure") for c in suite.iter("testcase")}
    assert cases["t::public"] is None
    assert cases["t::b"].get("message") == "t::b is wrong" and cases["t::b"].text == "t::b is wrong"
    assert cases["t::c"].text == "error: t::c is wrong"


def test_write_and_read(tmp_path):
    graded = _graded(notes=["a note"], fingerprint="abc", weights_sha256={})
    graded.write(tmp_path / "alice", "toy - alice")
    assert GradingResults.read(tmp_path / "alice" / "results.json") == graded
    summary = (tmp_path / "alice" / "summary.txt").read_text()
    assert summary == graded.summary("toy - alice")
    assert sorted(p.name for p in (tmp_path / "alice").iterdir()) == ["results.json", "summary.txt"]


def test_shared_weight_flags_follow_the_cohort_of_each_run(tmp_path):
    from dlcourse.grading import runner, spec

    toy = spec.load("toy", Path(__file__).resolve().parents[1] / "fixtures/grading/toy_tests")
    reference = "toy.pt is identical to the course's reference file weights/toy.pt"

    def cohort(*sids):
        made = {sid: _graded(weights_sha256={"toy.pt": "a" * 64}) for sid in sids}
        made["alice"].replace_flags([reference])
        return made

    first = cohort("alice", "bob")
    runner.finish_cohort(first, toy, tmp_path)
    second = cohort("alice", "bob", "carol")
    second["alice"].flags = first["alice"].flags  # as read back from the earlier run
    runner.finish_cohort(second, toy, tmp_path)
    assert second["alice"].flags == [
        reference,
        "toy.pt is identical to the weights submitted by bob, carol",
    ]
    assert _on_disk(second["alice"])["extra_data"]["flags"] == second["alice"].flags


def test_grading_late_submissions_keeps_the_sharing_with_the_rest(tmp_path):
    """A run over a few submissions flags sharing with those graded earlier into the same
    folder, on both sides; a resubmission with other weights clears it on both sides."""
    from dlcourse.grading import runner, spec

    toy = spec.load("toy", Path(__file__).resolve().parents[1] / "fixtures/grading/toy_tests")

    def run(sid: str, sha: str) -> GradingResults:  # what grade_many does for one submission
        graded = _graded(weights_sha256={"toy.pt": sha})
        graded.write(tmp_path / sid, f"toy - {sid}")
        runner.finish_cohort({sid: graded}, toy, tmp_path)
        return graded

    def on_disk(sid: str) -> list[str]:
        return GradingResults.read(tmp_path / sid / "results.json").flags

    run("alice", "a" * 64)
    assert on_disk("alice") == []
    bob = run("bob", "a" * 64)
    assert bob.flags == on_disk("bob") == ["toy.pt is identical to the weights submitted by alice"]
    assert on_disk("alice") == ["toy.pt is identical to the weights submitted by bob"]
    run("bob", "b" * 64)
    assert on_disk("alice") == on_disk("bob") == []
