"""Hidden tests for Part 1.1 `Conv2d` (grade cell cw1_conv2d_hidden, 15 points).

Each test sets its own weights and compares with `torch.nn.functional.conv2d`, one behaviour
per test, so a flipped kernel or an ignored stride loses only the marks of what it breaks.
"""

import torch
import torch.nn.functional as F

from dlcourse.grading import points

GRADE_CELL = "cw1_conv2d_hidden"
TOL = {"atol": 1e-4, "rtol": 1e-4}


def probe_conv(ns, x, w, b, kernel_size, stride, padding, grad_out=None):
    m = ns["Conv2d"](w.shape[1], w.shape[0], kernel_size, stride=stride, padding=padding,
                     bias=b is not None)  # fmt: skip
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


def _case(gen, n, c, h, w, out_ch, kernel_size, bias=True):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    x = torch.randn(n, c, h, w, generator=gen)
    weight = torch.randn(out_ch, c, kh, kw, generator=gen)
    b = torch.randn(out_ch, generator=gen) if bias else None
    return x, weight, b


def _check(student, x, w, b, kernel_size, stride=1, padding=0):
    what = f"Conv2d({w.shape[1]}, {w.shape[0]}, kernel_size={kernel_size}, stride={stride}, "
    what += f"padding={padding}, bias={b is not None}) on input {tuple(x.shape)}"
    got = student.run(probe_conv, x=x, w=w, b=b, kernel_size=kernel_size, stride=stride,
                      padding=padding)["out"]  # fmt: skip
    want = F.conv2d(x, w, b, stride=stride, padding=padding)
    assert isinstance(got, torch.Tensor), f"{what} returned a {type(got).__name__}"
    assert got.shape == want.shape, (
        f"{what}: output shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    )
    err = (got - want).abs().max().item()
    assert torch.allclose(got, want, **TOL), (
        f"{what}: outputs differ from torch's by up to {err:.3g}"
    )


@points(3)
def test_conv_forward_square_kernel(student):
    """Outputs match torch's for int kernel sizes (stride 1, no padding)."""
    gen = torch.Generator().manual_seed(1)
    for n, c, h, w, out_ch, k in [(2, 3, 9, 9, 4, 3), (3, 1, 8, 10, 2, 5), (2, 4, 6, 7, 3, 2)]:
        _check(student, *_case(gen, n, c, h, w, out_ch, k), kernel_size=k)


@points(2)
def test_conv_rectangular_kernel(student):
    """A (height, width) kernel tuple works (stride 1, no padding)."""
    gen = torch.Generator().manual_seed(2)
    for k in [(2, 3), (4, 3)]:
        _check(student, *_case(gen, 2, 3, 8, 9, 4, k), kernel_size=k)


@points(2)
def test_conv_padding(student):
    """Zero padding given as an int or a (height, width) tuple (stride 1)."""
    gen = torch.Generator().manual_seed(3)
    for k, p in [(3, 1), (3, 2), ((3, 2), (1, 2))]:
        _check(student, *_case(gen, 2, 3, 7, 8, 4, k), kernel_size=k, padding=p)


@points(3)
def test_conv_stride(student):
    """Strides as an int or a tuple, with odd sizes and with padding."""
    gen = torch.Generator().manual_seed(4)
    for k, s, p, size in [(3, 2, 0, (11, 9)), (2, 3, 0, (10, 11)), (3, (2, 1), 0, (9, 8)),
                          (3, 2, 1, (9, 10)), ((3, 2), (1, 3), (1, 0), (8, 11))]:  # fmt: skip
        _check(student, *_case(gen, 2, 3, *size, 4, k), kernel_size=k, stride=s, padding=p)


@points(1)
def test_conv_without_bias(student):
    """bias=False: no bias is added."""
    gen = torch.Generator().manual_seed(5)
    _check(student, *_case(gen, 2, 3, 8, 8, 4, 3, bias=False), kernel_size=3)


@points(1)
def test_conv_batch_of_one(student):
    """A batch of one image and a single output channel."""
    gen = torch.Generator().manual_seed(6)
    _check(student, *_case(gen, 1, 2, 5, 6, 1, 3), kernel_size=3)
    _check(student, *_case(gen, 1, 1, 7, 5, 3, 3), kernel_size=3, padding=1)


@points(2)
def test_conv_gradients(student):
    """Gradients with respect to the input, the weight and the bias match torch's."""
    gen = torch.Generator().manual_seed(7)
    x, w, b = _case(gen, 2, 3, 7, 8, 4, 3)
    grad_out = torch.randn(2, 4, 7, 8, generator=gen)
    got = student.run(probe_conv, x=x, w=w, b=b, kernel_size=3, stride=1, padding=1,
                      grad_out=grad_out)  # fmt: skip
    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    F.conv2d(x, w, b, padding=1).backward(grad_out)
    for name, key, want in [("input", "dx", x.grad), ("weight w", "dw", w.grad),
                            ("bias b", "db", b.grad)]:  # fmt: skip
        assert got[key] is not None, f"no gradient reached the {name}"
        assert torch.allclose(got[key], want, **TOL), f"the {name} gradient differs from torch's"


@points(1)
def test_conv_rules(student, check_rules):
    """No Python loops and no torch convolution layers or functions."""
    check_rules("Conv2d", (3, 4, 3), torch.randn(2, 3, 8, 8))
