"""dlcourse.check: every check prints one line, and a failure always carries that line."""

import ast
from pathlib import Path

import pytest
import torch

from dlcourse import check


def test_pass_prints_name_measured_expected_and_tolerance(capsys):
    assert check.close("mean", 0.5 + 1e-7, 0.5, atol=1e-6) is None  # no stray True in a cell
    line = capsys.readouterr().out.strip()
    assert line.startswith("PASS mean: measured 0.5") and "expected 0.5" in line
    assert "atol=1e-06" in line


def test_failure_raises_with_the_printed_line(capsys):
    with pytest.raises(AssertionError) as exc:
        check.close("std", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]))
    printed = capsys.readouterr().out.strip()
    assert str(exc.value) == printed
    assert printed.startswith("FAIL std: measured [1, 2], expected [1, 1]")
    assert "largest difference 1" in printed


def test_large_tensors_name_the_largest_difference_and_where():
    x = torch.zeros(4, 5)
    y = x.clone()
    y[2, 3] = 0.5
    with pytest.raises(
        AssertionError, match=r"difference 0.5 over 20 elements, at index \(2, 3\): 0, expected 0.5"
    ):
        check.close("out", x, y)


def test_close_reports_a_shape_mismatch():
    with pytest.raises(AssertionError, match=r"FAIL w shape: measured \(3, 1\), expected \(1, 3\)"):
        check.close("w", torch.zeros(3, 1), torch.zeros(1, 3))


def test_shape_true_in_range_and_equal(capsys):
    check.shape("logits", torch.zeros(4, 10), (4, 10))
    check.true("no softmax", True, measured="row sums 0.3, 1.7", expected="rows not summing to 1")
    check.in_range("accuracy", 0.9, low=0.85)
    check.equal("count", 55, 55)
    check.equal("one-hot", torch.eye(2), torch.eye(2))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 and all(line.startswith("PASS") for line in out)
    assert out[2] == "PASS accuracy: measured 0.9, expected at least 0.85"
    with pytest.raises(AssertionError, match="expected between 0 and 1"):
        check.in_range("probability", 1.5, 0, 1)
    with pytest.raises(AssertionError, match="measured 56, expected 55"):
        check.equal("count", 56, 55)
    with pytest.raises(AssertionError, match="dtype: measured torch.int64, expected torch.float32"):
        check.equal("one-hot", torch.eye(2).long(), torch.eye(2))


def test_grad_against_central_differences_and_a_reference(capsys):
    x = torch.randn(3, 4, dtype=torch.float64)
    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    check.grad("x w^T", lambda x: x @ w.T, [x], wrt=[w], labels=["x", "w"])
    lin = torch.nn.Linear(4, 2).double()
    with torch.no_grad():
        lin.weight.copy_(w)
    check.grad("vs Linear", lambda x: x @ w.T, [x], reference=lin, wrt=[w], ref_wrt=[lin.weight])
    assert capsys.readouterr().out.count("PASS") == 4


def test_grad_failure_names_measured_and_expected():
    x = torch.randn(3, 4, dtype=torch.float64)

    def wrong_backward(x):  # the forward pass is right, the gradient is doubled
        return x.detach() + 2 * (x - x.detach())

    expected = r"FAIL .*gradient w.r.t. input 0 vs central.*measured"
    with pytest.raises(AssertionError, match=expected):
        check.grad("f", wrong_backward, [x])


def test_imports_only_torch_and_numpy():
    tree = ast.parse(Path(check.__file__).read_text())
    modules = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert modules <= {"__future__", "collections", "contextlib", "typing", "numpy", "torch"}


def test_answer_checks_the_form_and_names_an_unanswered_question(capsys):
    check.answer({"Q1": 32}, "Q1", "whole number")
    check.answer({"Q4": (1, 2, 3, 4)}, "Q4", "whole number", count=4)
    check.answer({"Q6": " B "}, "Q6", "letter")
    check.answer({"Q5": (1, 0.5, 2)}, "Q5", "number", count=3)
    with pytest.raises(AssertionError, match=r"FAIL Q7 not answered: .* expected Q7 = <a number>"):
        check.answer({}, "Q7", "number")
    with pytest.raises(AssertionError, match=r"Q2 is a whole number: measured 2.5"):
        check.answer({"Q2": 2.5}, "Q2", "whole number")
    with pytest.raises(AssertionError, match=r"tuple of three whole numbers"):
        check.answer({"Q3": (1, 2)}, "Q3", "whole number", count=3)
    with pytest.raises(AssertionError):
        check.answer({"Q9": True}, "Q9", "number")


def test_after_exercise_names_the_unfinished_exercise_and_keeps_other_errors(capsys):
    def blank():
        raise NotImplementedError()

    with check.after_exercise(3):
        blank()
        raise AssertionError("never reached")
    assert capsys.readouterr().out.strip() == (
        "Finish exercise 3 first: this cell uses it (NotImplementedError)."
    )
    with check.after_exercise(4):
        undefined_name  # noqa: B018, F821 - what a skipped exercise cell leaves behind
    assert "Finish exercise 4 first" in capsys.readouterr().out
    with pytest.raises(KeyError), check.after_exercise(5):
        {}["missing"]
