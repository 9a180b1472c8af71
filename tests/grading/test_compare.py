"""dlcourse.grading.compare.close: the hidden tests' one numeric assertion and its messages."""

import math

import pytest
import torch

from dlcourse.grading.compare import close


def _message(*args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        close(*args, **kwargs)
    return str(info.value)


def test_within_tolerance_passes():
    want = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    close(want + 5e-6, want, "f(x)")
    close(want * (1 + 1e-4), want, "f(x)", atol=0.0, rtol=2e-4)
    close(torch.tensor([2.0]), 2.0, "one number")  # a one-element tensor for a number
    close(math.log(2), torch.tensor(math.log(2)), "a 0-d reference")
    close(torch.zeros(0, 3), torch.zeros(0, 3), "empty")


def test_worst_element_is_named_with_source_and_tolerance():
    want = torch.zeros(2, 3)
    got = want.clone()
    got[1, 2] = 0.5
    got[0, 0] = 0.1
    msg = _message(got, want, "conv2d(x, w)", "F.conv2d", atol=1e-4)
    assert msg == (
        "conv2d(x, w): differs from F.conv2d by up to 0.5 (tolerance 0.0001); at index (1, 2) "
        "it is 0.5, F.conv2d gives 0"
    )


def test_relative_tolerance_is_stated_and_used():
    want = torch.tensor([1000.0, 1.0])
    close(torch.tensor([1000.5, 1.0]), want, "w", atol=0.0, rtol=1e-3)
    msg = _message(torch.tensor([1000.0, 1.01]), want, "w", atol=0.0, rtol=1e-3)
    assert "(tolerance 0 + 0.001 x |expected|); at index (1,)" in msg


def test_wrong_type_shape_and_nan_say_so():
    want = torch.ones(3)
    assert _message([1.0, 1.0, 1.0], want, "g(x)") == "g(x) returned a list, not a tensor"
    assert _message(torch.ones(1, 3), want, "g(x)") == "g(x): shape (1, 3), expected (3,)"
    nan = torch.tensor([1.0, float("nan"), 1.0])
    assert _message(nan, want, "g(x)", atol=1e9) == "g(x): holds NaN or infinite values"
    assert _message("0.5", 0.5, "Q") == "Q returned '0.5', not a number"
    assert _message(True, 1.0, "Q") == "Q returned True, not a number"


def test_numbers_read_as_numbers():
    assert _message(0.25, 0.5, "kl(p, q)", "the closed form") == (
        "kl(p, q) is 0.25, the closed form gives 0.5 (tolerance 1e-05)"
    )
