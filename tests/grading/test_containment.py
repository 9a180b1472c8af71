"""Every containment case of issue 3 point 4: a fixture submission, its message and its marks.

All cases are graded in one batch (two at a time), as a course would grade a cohort: the batch
must finish, each case must get exactly its marks, and no submission file may change.
"""

import csv
import json
import shutil
from pathlib import Path

import pytest

from dlcourse.grading import runner
from dlcourse.grading.results import GradingResults
from dlcourse.grading.sandbox import bwrap_works

SUBMISSIONS = Path(__file__).resolve().parents[1] / "fixtures" / "grading" / "submissions"

ALL = [
    "test_add", "test_logits_shape", "test_parameter_count",
    "test_logits_finite", "test_accuracy", "test_add_by_hand", "test_add_has_no_loop",
]  # fmt: skip
LOGITS = ["test_logits_shape", "test_logits_finite", "test_accuracy"]


def each(tests, outcome, text):
    return {t: (outcome, text) for t in tests}


NO_NOTEBOOK = [t for t in ALL if t != "test_parameter_count"]
ADD = ["test_add", "test_add_by_hand"]
NEEDS_WEIGHTS = [*LOGITS, "test_parameter_count"]
# case -> (score out of 8, {test: (outcome, text in its output)}); unlisted tests pass.
CASES = {
    "good": (8, {}),
    "missing_notebook": (1, each(NO_NOTEBOOK, "error", "missing toy.ipynb")),
    "corrupt_notebook": (1, each(NO_NOTEBOOK, "error", "toy.ipynb is not a readable notebook")),
    "missing_weights": (3, each(NEEDS_WEIGHTS, "error", "missing weight file toy.pt")),
    "corrupt_weights": (
        3,
        each(NEEDS_WEIGHTS, "error", "toy.pt cannot be loaded with torch.load(weights_only=True)"),
    ),
    "misshaped_weights": (
        4,
        each(
            LOGITS,
            "error",
            "toy.pt does not fit Net: Error(s) in loading state_dict for Net: "
            "size mismatch for fc1.weight",
        ),
    ),
    "nan_output": (
        5,
        {
            "test_logits_finite": ("failed", "the logits contain NaN or inf"),
            "test_accuracy": ("failed", "is below 0.95"),
        },
    ),
    "raising": (
        2,
        {
            **each(ADD, "error", "ValueError: add is not written yet"),
            **each(LOGITS, "error", "RuntimeError: forward is not written yet"),
        },
    ),
    "hanging": (4, each(LOGITS, "error", "CPU seconds without an answer")),
    "memory": (4, each(LOGITS, "error", "out of memory: the student's processes used")),
    "prints": (8, {}),
    "monkeypatch": (6, {"test_accuracy": ("failed", "accuracy 0.355 is below 0.95")}),
    "snoop": (8, {}),
}

pytestmark = pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap")


@pytest.fixture(scope="module")
def graded(once, toy_spec, hash_tree):
    def build(out):
        before = {c: hash_tree(SUBMISSIONS / c) for c in CASES}
        subs = [SUBMISSIONS / c for c in CASES]
        cohort = runner.grade_many(subs, toy_spec, out, jobs=2, progress=False)
        return {
            "docs": {c: r.to_gradescope() for c, r in cohort.items()},  # shared as JSON
            "before": before,
            "after": {c: hash_tree(SUBMISSIONS / c) for c in CASES},
        }

    out, r = once("containment", build)
    docs = {c: GradingResults.from_gradescope(d) for c, d in r["docs"].items()}
    return docs, out, r["before"], r["after"]


@pytest.mark.parametrize("case", list(CASES))
def test_case_message_and_marks(graded, case):
    docs, _, _, _ = graded
    doc = docs[case]
    score, expected = CASES[case]
    tests = {t.name.split("::")[1]: t for t in doc.tests}
    assert list(tests) == ALL
    for name, t in tests.items():
        outcome, text = expected.get(name, ("passed", ""))
        assert t.outcome == outcome, (name, t.output)
        assert text in t.output, (name, t.output)
        if outcome == "error":
            assert t.output.startswith("error: "), t.output
    assert doc.score == score and doc.max_score == 8
    errors = sum(o == "error" for o, _ in expected.values())
    status = doc.status.removesuffix(" - FLAGGED")  # shared toy.pt: see below
    assert status == (f"error ({errors} tests could not be computed)" if errors else "complete")
    assert "bubblewrap sandbox" in "\n".join(doc.all_notes)


def test_submissions_unmodified(graded):
    _, _, before, after = graded
    assert before == after


def test_outputs_written(graded):
    docs, out, _, _ = graded
    for case in CASES:
        gs = json.loads((out / case / "results.json").read_text())
        assert {"score", "max_score", "tests"} <= set(gs)
        assert all(
            {"name", "score", "max_score", "output", "visibility"} <= set(t) for t in gs["tests"]
        )
        summary = (out / case / "summary.txt").read_text()
        assert summary.startswith(f"toy - {case}: {gs['score']:g}/8")
    rows = {r["submission"]: r for r in csv.DictReader((out / "marks.csv").open())}
    assert set(rows) == set(CASES)
    assert rows["hanging"]["test_toy::test_accuracy"] == "error"
    assert rows["nan_output"]["test_toy::test_accuracy"] == "0"
    assert rows["good"]["score"] == "8"


def test_feedback_hides_test_code(graded):
    docs, _, _, _ = graded
    text = json.dumps({c: d.to_gradescope() for c, d in docs.items()})
    text += "".join(d.summary(c) for c, d in docs.items())
    for secret in ("TEACHER", "probe_logits(ns", "assert acc", "def test_"):
        assert secret not in text


def test_load_warning_names_the_statement(graded):
    docs, _, _, _ = graded
    assert "import not_a_module') raised ModuleNotFoundError" in "\n".join(docs["raising"].notes)


def test_resumable(graded, toy_spec, tmp_path):
    """An already graded submission is skipped (its results.json is not rewritten). The
    others graded beside it stay in the output folder, so its shared-weights flags still hold."""
    _, out, _, _ = graded
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    mtime = (tmp_path / "good" / "results.json").stat().st_mtime_ns
    cohort = runner.grade_many([SUBMISSIONS / "good"], toy_spec, tmp_path, progress=False)
    assert (tmp_path / "good" / "results.json").stat().st_mtime_ns == mtime
    assert cohort["good"].score == 8
    assert "good,8,8,complete" in (tmp_path / "marks.csv").read_text()


def test_unsandboxed_run_says_so_and_sees_more(tmp_path, toy_spec, hash_tree):
    """Without bubblewrap the snoop fixture reaches grader files: what the sandbox prevents."""
    before = hash_tree(SUBMISSIONS / "snoop")
    graded = runner.grade_submission(SUBMISSIONS / "snoop", toy_spec, tmp_path, sandbox=False)
    assert "NOT SANDBOXED" in "\n".join(graded.all_notes)
    add = next(t for t in graded.tests if t.name.endswith("::test_add"))
    assert add.outcome == "failed"  # snoop() found files, so add() is off
    assert hash_tree(SUBMISSIONS / "snoop") == before  # it tried to append to toy.ipynb
