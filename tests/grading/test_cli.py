"""`dlcourse validate` and `dlcourse grade` from the command line."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dlcourse.cli import main
from dlcourse.grading.sandbox import bwrap_works

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
TOY = ["--assignment", "toy", "--tests", str(FIXTURES / "toy_tests")]

pytestmark = pytest.mark.skipif(not bwrap_works(), reason="needs a working bubblewrap")


def test_validate_passes_a_good_submission(tmp_path, capsys):
    junit = tmp_path / "validate.xml"
    assert (
        main(["validate", str(FIXTURES / "submissions" / "good"), *TOY, "--junit", str(junit)]) == 0
    )
    out = capsys.readouterr().out
    assert "PASS  test_toy::test_add" in out and "PASS  test_toy::test_logits_shape" in out
    assert "test_accuracy" not in out  # hidden tests are neither run nor named
    suite = ET.parse(junit).getroot()
    # validate's own checks (files, notebook, weights) and the two public tests
    assert suite.get("tests") == "5" and suite.get("failures") == "0"


def test_validate_names_what_is_wrong(capsys):
    assert main(["validate", str(FIXTURES / "submissions" / "corrupt_weights"), *TOY]) == 1
    out = capsys.readouterr().out
    assert "NOT READY" in out
    assert "toy.pt cannot be loaded with torch.load(weights_only=True)" in out
    assert "FAIL  test_toy::test_logits_shape" in out


def test_grade_writes_results_and_csv(tmp_path, capsys):
    sub = FIXTURES / "submissions" / "missing_weights"
    assert main(["grade", str(sub), *TOY, "--out", str(tmp_path)]) == 0
    assert "missing_weights: 3/8 (error (4 tests could not be computed))" in capsys.readouterr().out
    assert (tmp_path / "missing_weights" / "results.json").is_file()
    assert "missing_weights,3,8," in (tmp_path / "marks.csv").read_text()


def test_bad_arguments_get_messages(tmp_path, capsys):
    out = ["--out", str(tmp_path / "out")]
    assert main(["grade", str(tmp_path / "nope"), *TOY, *out]) == 0  # a row, not a crash
    assert "nope: 0/0 (error: submission refused:" in capsys.readouterr().out
    assert "is not a folder" in (tmp_path / "out" / "marks.csv").read_text()
    assert main(["grade", str(tmp_path), "--assignment", "nonexistent"]) == 2
    assert "no grading spec" in capsys.readouterr().err
