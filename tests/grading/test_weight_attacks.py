"""Weights that would score without the work earn no accuracy mark and are flagged.

Each case is what a determined student could submit (tests/attack_fixtures.py): the public test
images as float16 thumbnails within CW1's 4,000,000 bytes, answered by a nearest-neighbour
lookup; the same set packed 64 pixels per int64; and the course classifier the student kit ships
for CW2, pasted in as the graded class with its weights. Only the model tests run (test_model.py
and test_mlp.py in scratch test folders): the layer tests have nothing to do with weights.
"""

import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from attack_fixtures import (
    LOOKUP_MYRESNET,
    classifier_class,
    lookup_weights,
    packed_int64_table,
    table_class,
)

from dlcourse import course, data, weights
from dlcourse.grading import runner, spec
from dlcourse.grading.results import GradingResults
from dlcourse.grading.sandbox import bwrap_works

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap"),
]

CW1_TIERS = ["test_beats_baseline", "test_tier_1", "test_tier_2", "test_tier_3"]
INTRO_TIERS = ["test_accuracy_above_80", "test_accuracy_above_83", "test_accuracy_above_86"]


def _tests_only(folder: Path, assignment: str, module: str) -> spec.Spec:
    folder.mkdir()
    for name in ("assignment.toml", module):
        shutil.copy(course.GRADER_TESTS / assignment / name, folder / name)
    return spec.load(assignment, folder)


def _submission(folder: Path, assignment: str, cell: str, sd: dict, weight_file: str) -> Path:
    folder.mkdir()
    a = course.get(assignment)
    nb = nbformat.read(a.notebooks[0], as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(cell))  # the last definition is the one graded
    nbformat.write(nb, folder / a.notebooks[0].name)
    torch.save(sd, folder / weight_file)
    return folder


@pytest.fixture(scope="module")
def graded(once):
    def build(root):
        test = data.load_fashion_mnist(smoke=False).test
        clf = weights.load_state_dict("fmnist_classifier.pt")
        cases = {
            "cw1_lookup": ("cw1", LOOKUP_MYRESNET, lookup_weights(test.x, test.y)),
            "cw1_int64": ("cw1", table_class("MyResNet"), packed_int64_table(test.x, test.y)),
            "cw1_classifier": ("cw1", classifier_class("MyResNet"), clf),
            "intro1_classifier": ("pytorch_intro_1", classifier_class("MLP"), clf),
            "intro1_int64": (
                "pytorch_intro_1",
                table_class("MLP"),
                packed_int64_table(test.x, test.y),
            ),
        }
        specs = {
            "cw1": _tests_only(root / "cw1_tests", "cw1", "test_model.py"),
            "pytorch_intro_1": _tests_only(root / "intro_tests", "pytorch_intro_1", "test_mlp.py"),
        }
        docs = {}
        for name, (assignment, cell, sd) in cases.items():
            s = specs[assignment]
            sub = _submission(root / name, assignment, cell, sd, s.weights[0])
            docs[name] = runner.grade_submission(sub, s, root / "out" / name).to_gradescope()
        return docs

    _, docs = once("weight-attacks", build)
    return {name: GradingResults.from_gradescope(d) for name, d in docs.items()}


def _outcomes(result: GradingResults) -> dict[str, tuple[str, str]]:
    return {t.name.split("::")[1]: (t.outcome, t.output) for t in result.tests}


def test_lookup_within_the_byte_limit_is_caught_by_its_behaviour(graded):
    r = graded["cw1_lookup"]
    tests = _outcomes(r)
    for name in ("test_weights_load", "test_parameter_limit", "test_evaluation_time"):
        assert tests[name][0] == "passed", tests[name]  # it is within every limit ...
    for name in CW1_TIERS:  # ... and earns no accuracy mark: a person decides
        outcome, output = tests[name]
        assert outcome == "error" and output.startswith("withheld for a person to decide"), output
        assert "test accuracy 100.00%" in output and "on training images" in output
    assert r.score == 7
    assert any("a lookup of the public test images answers so" in f for f in r.flags), r.flags


def test_packed_integer_tables_are_refused(graded):
    for case, tiers, limit_test in (
        ("cw1_int64", CW1_TIERS, "test_parameter_limit"),
        ("intro1_int64", INTRO_TIERS, "test_parameter_count"),
    ):
        tests = _outcomes(graded[case])
        for name in (*tiers, limit_test):
            outcome, output = tests[name]
            assert outcome == "error", (case, name, output)
            assert "tensor table of shape (10000, 13) holds int64 numbers" in output
            assert "graded weights must be floating point" in output


def test_the_kits_classifier_earns_nothing_and_is_flagged(graded):
    r = graded["cw1_classifier"]
    for name in CW1_TIERS:
        outcome, output = _outcomes(r)[name]
        assert outcome == "error" and "holds the course's own weights" in output, output
        assert "weights/fmnist_classifier.pt" in output
    intro = graded["intro1_classifier"]
    for name in INTRO_TIERS:
        assert _outcomes(intro)[name][0] == "error"
    assert _outcomes(intro)["test_parameter_count"][0] == "failed"  # not MLP(hidden=256)'s
    for result in (r, intro):
        assert any("of the course's weights/fmnist_classifier.pt" in f for f in result.flags)
        assert "FLAGGED" in result.status
