"""Hidden tests for Part 1.2 `MaxPool2d` (grade cell cw1_maxpool_hidden, 15 points).

The stride equals the kernel size and sizes are rounded down, as `nn.MaxPool2d(k)` does;
inputs are continuous random values, so the maximum of every window is unique.
"""

import torch
import torch.nn.functional as F

from dlcourse.grading import points

GRADE_CELL = "cw1_maxpool_hidden"


def probe_pool(ns, x, kernel_size, grad_out=None):
    m = ns["MaxPool2d"](kernel_size)
    x = x.clone().requires_grad_(grad_out is not None)
    out = m(x)
    if grad_out is None:
        return {"out": out}
    out.backward(grad_out)
    return {"out": out, "dx": x.grad}


def _check(student, x, k):
    what = f"MaxPool2d({k}) on input {tuple(x.shape)}"
    got = student.run(probe_pool, x=x, kernel_size=k)["out"]
    want = F.max_pool2d(x, k)
    assert isinstance(got, torch.Tensor), f"{what} returned a {type(got).__name__}"
    assert got.shape == want.shape, (
        f"{what}: output shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    )
    assert torch.equal(got, want), f"{what}: outputs differ from torch's"


@points(4)
def test_pool_forward(student):
    """Outputs match torch's when the window divides the image."""
    gen = torch.Generator().manual_seed(11)
    for shape, k in [((2, 3, 8, 8), 2), ((2, 2, 8, 12), 4), ((3, 4, 6, 9), 3)]:
        _check(student, torch.randn(*shape, generator=gen), k)


@points(3)
def test_pool_rounds_down(student):
    """Rows and columns that do not fill a window are dropped (odd sizes)."""
    gen = torch.Generator().manual_seed(12)
    for shape, k in [((2, 3, 7, 9), 2), ((2, 2, 10, 8), 3), ((1, 3, 5, 11), 4)]:
        _check(student, torch.randn(*shape, generator=gen), k)


@points(2)
def test_pool_negative_inputs(student):
    """Windows whose values are all negative keep their (negative) maximum."""
    gen = torch.Generator().manual_seed(13)
    for shape, k in [((2, 3, 8, 8), 2), ((2, 2, 9, 7), 3)]:
        _check(student, -1 - torch.rand(*shape, generator=gen), k)


@points(1)
def test_pool_batch_of_one(student):
    """A batch of one image with many channels."""
    gen = torch.Generator().manual_seed(14)
    _check(student, torch.randn(1, 7, 6, 6, generator=gen), 2)


@points(3)
def test_pool_gradients(student):
    """The gradient flows to the position of each window's maximum only."""
    gen = torch.Generator().manual_seed(15)
    for shape, k in [((2, 3, 8, 8), 2), ((2, 2, 10, 7), 3)]:
        x = torch.randn(*shape, generator=gen)
        want_out = F.max_pool2d(x, k)
        grad_out = torch.randn(want_out.shape, generator=gen)
        got = student.run(probe_pool, x=x, kernel_size=k, grad_out=grad_out)
        xr = x.clone().requires_grad_(True)
        F.max_pool2d(xr, k).backward(grad_out)
        assert got["dx"] is not None, "no gradient reached the input"
        assert torch.allclose(got["dx"], xr.grad), (
            f"MaxPool2d({k}) on {tuple(shape)}: the input gradient differs from torch's"
        )


@points(2)
def test_pool_rules(student, check_rules):
    """No Python loops and no torch pooling layers or functions."""
    check_rules("MaxPool2d", (2,), torch.randn(2, 3, 8, 8))
