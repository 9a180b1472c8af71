"""Hidden tests for Part 1.3 `Linear` (grade cell cw1_linear_hidden, 5 points)."""

import torch
import torch.nn.functional as F

from dlcourse.grading import points

GRADE_CELL = "cw1_linear_hidden"
TOL = {"atol": 1e-4, "rtol": 1e-4}


def probe_linear(ns, x, w, b, grad_out=None):
    m = ns["Linear"](w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        m.w.copy_(w)
        if b is not None:
            m.b.copy_(b)
    x = x.clone().requires_grad_(grad_out is not None)
    out = m(x)
    if grad_out is None:
        return {"out": out}
    out.backward(grad_out)
    return {"out": out, "dx": x.grad, "dw": m.w.grad, "db": None if b is None else m.b.grad}


def _check(student, x, w, b):
    what = f"Linear({w.shape[1]}, {w.shape[0]}, bias={b is not None}) on input {tuple(x.shape)}"
    got = student.run(probe_linear, x=x, w=w, b=b)["out"]
    want = F.linear(x, w, b)
    assert isinstance(got, torch.Tensor), f"{what} returned a {type(got).__name__}"
    assert got.shape == want.shape, (
        f"{what}: output shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    )
    assert torch.allclose(got, want, **TOL), f"{what}: outputs differ from torch's"


def _case(gen, shape, out_features, bias=True):
    x = torch.randn(*shape, generator=gen)
    w = torch.randn(out_features, shape[-1], generator=gen)
    return x, w, torch.randn(out_features, generator=gen) if bias else None


@points(1)
def test_linear_forward(student):
    """(N, in) inputs, including a batch of one."""
    gen = torch.Generator().manual_seed(21)
    for shape, out_features in [((4, 5), 3), ((1, 7), 2)]:
        _check(student, *_case(gen, shape, out_features))


@points(1)
def test_linear_extra_dimensions(student):
    """(N, *, in) inputs: the layer acts on the last dimension."""
    gen = torch.Generator().manual_seed(22)
    for shape, out_features in [((2, 3, 5), 4), ((2, 3, 4, 6), 2)]:
        _check(student, *_case(gen, shape, out_features))


@points(1)
def test_linear_without_bias(student):
    """bias=False: no bias is added."""
    gen = torch.Generator().manual_seed(23)
    _check(student, *_case(gen, (4, 5), 3, bias=False))


@points(1)
def test_linear_gradients(student):
    """Gradients with respect to the input, the weight and the bias match torch's."""
    gen = torch.Generator().manual_seed(24)
    x, w, b = _case(gen, (4, 2, 5), 3)
    grad_out = torch.randn(4, 2, 3, generator=gen)
    got = student.run(probe_linear, x=x, w=w, b=b, grad_out=grad_out)
    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    F.linear(x, w, b).backward(grad_out)
    for name, key, want in [("input", "dx", x.grad), ("weight w", "dw", w.grad),
                            ("bias b", "db", b.grad)]:  # fmt: skip
        assert got[key] is not None, f"no gradient reached the {name}"
        assert torch.allclose(got[key], want, **TOL), f"the {name} gradient differs from torch's"


@points(1)
def test_linear_rules(student, check_rules):
    """No Python loops and no torch linear layers or functions."""
    check_rules("Linear", (5, 3), torch.randn(4, 5))
