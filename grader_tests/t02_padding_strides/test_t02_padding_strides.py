"""Hidden tests for T02 padding and strides: each exercise's cell gets the points of its tests.

Expected sizes are never written here: they are the shapes PyTorch's own layers produce
(`nn.Conv1d`, `nn.Conv2d`, `nn.ConvTranspose1d`, `nn.MaxPool2d`) on zero inputs, and "same"
padding is checked by value against `padding="same"`. The table of predicted shapes is read from
the notebook's source (`student.literal`), so nothing of the student's runs for it.
`conv2d_output_shape` is called with a correct `conv_output_size` in place of the notebook's, so
a mistake in Exercise 1 costs only Exercise 1's points.
"""

import ast
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcourse.grading import grade_cell, points

N = "t02_padding_strides"


def probe_call(ns, name, args, kwargs=None, reference=False):
    """ns[name](*args, **kwargs) as plain ints and tuples; anything else described as text.

    With `reference`, the notebook's conv_output_size is replaced, while the call runs, by one
    that measures the length nn.Conv1d gives: Exercise 3 builds on Exercise 1, and a mistake in
    Exercise 1 should cost only Exercise 1's marks."""

    def conv_output_size(n, k, s=1, p=0, d=1):
        return nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 1, n)).shape[-1]

    fn = ns[name]
    definitions = getattr(fn, "__globals__", None)
    definitions = definitions if reference and isinstance(definitions, dict) else {}
    saved = definitions.get("conv_output_size")
    if reference:
        definitions["conv_output_size"] = conv_output_size
    try:
        out = fn(*args, **(kwargs or {}))
    finally:
        if saved is not None:
            definitions["conv_output_size"] = saved
        else:
            definitions.pop("conv_output_size", None)

    def plain(v):
        if type(v) is int:
            return v
        if isinstance(v, tuple | list):
            return tuple(plain(e) for e in v)
        return f"{v!r} (a {type(v).__name__})"

    return plain(out)


def conv_len(n, k, s=1, p=0, d=1):
    return nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 1, n)).shape[-1]


def transpose_len(n, k, s=1, p=0, d=1, output_padding=0):
    layer = nn.ConvTranspose1d(1, 1, k, stride=s, padding=p, dilation=d,
                               output_padding=output_padding)  # fmt: skip
    return layer(torch.zeros(1, 1, n)).shape[-1]


conv_len.__test__ = transpose_len.__test__ = False  # helpers, not tests


def _expect(student, name, args, want, kwargs=None, reference=False):
    got = student.run(probe_call, name=name, args=list(args), kwargs=kwargs, reference=reference)
    shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()])
    assert got == want, f"{name}({shown}) returned {got!r}, expected {want!r}"


NOT_ARITHMETIC = {"torch", "nn", "F", "np", "numpy", "filters"}


def _arithmetic_only(student, name):
    """`name` computes its answer itself: no PyTorch layers to measure it, no imports."""
    tree = ast.parse(student.source(name) or "")
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in NOT_ARITHMETIC}
    if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)):
        used.add("an import")
    assert not used, (
        f"{name} uses {', '.join(sorted(used))}: the exercise asks for the formula, in plain "
        "integer arithmetic"
    )


_expect.__test__ = _arithmetic_only.__test__ = False


# Exercise 1: conv_output_size (3 points) -------------------------------------------------


def _size(student, n, k, s=1, p=0, d=1):
    _expect(student, "conv_output_size", (n, k, s, p, d), conv_len(n, k, s, p, d))


@grade_cell(f"{N}_output_size_check")
@points(1)
def test_output_size_stride_one(student):
    """Stride 1 with and without padding, odd and even kernels; the formula, not a layer."""
    for n, k, p in [(28, 5, 0), (28, 5, 2), (17, 4, 1), (9, 9, 0), (6, 2, 3)]:
        _size(student, n, k, p=p)
    _arithmetic_only(student, "conv_output_size")


@grade_cell(f"{N}_output_size_check")
@points(1)
def test_output_size_strides(student):
    """Strides that divide the span and strides where the floor drops positions."""
    for n, k, s, p in [(64, 3, 2, 1), (65, 3, 2, 1), (31, 4, 3, 0), (100, 7, 4, 3), (5, 1, 5, 0)]:
        _size(student, n, k, s, p)


@grade_cell(f"{N}_output_size_check")
@points(1)
def test_output_size_dilation(student):
    """Dilated kernels, also with stride and padding."""
    for n, k, s, p, d in [(20, 3, 1, 0, 2), (20, 3, 1, 4, 4), (33, 5, 2, 2, 3), (15, 2, 1, 0, 7)]:
        _size(student, n, k, s, p, d)


# Exercise 2: PREDICTED (4 points, one per pair of rows) -----------------------------------

LAYERS = [
    (nn.Conv2d(3, 16, 5), (8, 3, 32, 32)),
    (nn.Conv2d(3, 16, 3, padding=1), (8, 3, 32, 32)),
    (nn.Conv2d(3, 32, 3, stride=2, padding=1), (8, 3, 32, 32)),
    (nn.Conv2d(3, 8, 4, stride=2), (8, 3, 32, 32)),
    (nn.Conv2d(3, 8, (3, 5), padding=(1, 0)), (8, 3, 32, 32)),
    (nn.Conv2d(3, 8, 3, dilation=2), (8, 3, 32, 32)),
    (nn.MaxPool2d(3, stride=2), (8, 3, 32, 32)),
    (nn.Conv2d(3, 4, 7, stride=3, padding=2), (2, 3, 28, 28)),
]


def _rows(student, rows):
    found, got = student.literal("PREDICTED")
    assert found, "PREDICTED is not answered: write PREDICTED = [(N, C, H, W), ...]"
    assert isinstance(got, list | tuple) and len(got) == 8, (
        f"PREDICTED should be a list of 8 shapes, got {got!r}"[:200]
    )
    for row in rows:
        layer, shape = LAYERS[row - 1]
        want = tuple(layer(torch.zeros(shape)).shape)
        answer = got[row - 1]
        ok = isinstance(answer, tuple | list) and tuple(answer) == want
        assert ok, f"row {row}: you predicted {answer!r}, the layer gives {want}"


@grade_cell(f"{N}_predicted_check")
@points(1)
def test_predicted_rows_1_2(student):
    """Rows 1-2: no padding, then padding 1 with a 3x3 kernel."""
    _rows(student, (1, 2))


@grade_cell(f"{N}_predicted_check")
@points(1)
def test_predicted_rows_3_4(student):
    """Rows 3-4: stride 2 with and without padding."""
    _rows(student, (3, 4))


@grade_cell(f"{N}_predicted_check")
@points(1)
def test_predicted_rows_5_6(student):
    """Rows 5-6: a rectangular kernel with per-axis padding, and dilation."""
    _rows(student, (5, 6))


@grade_cell(f"{N}_predicted_check")
@points(1)
def test_predicted_rows_7_8(student):
    """Rows 7-8: overlapping max pooling, and a large kernel with stride 3 on 28x28."""
    _rows(student, (7, 8))


# Exercise 3: conv2d_output_shape (3 points) ----------------------------------------------


def _shape(student, shape, cout, **kwargs):
    with warnings.catch_warnings():  # even kernels with padding="same" warn; harmless here
        warnings.simplefilter("ignore", UserWarning)
        want = tuple(nn.Conv2d(shape[1], cout, **kwargs)(torch.zeros(shape)).shape)
    _expect(student, "conv2d_output_shape", (shape, cout), want, kwargs, reference=True)


@grade_cell(f"{N}_conv2d_shape_check")
@points(1)
def test_conv2d_shape_ints(student):
    """Ints for the kernel size, stride, padding and dilation; non-square inputs."""
    _shape(student, (3, 1, 28, 28), 6, kernel_size=5, padding=2)
    _shape(student, (2, 16, 33, 20), 32, kernel_size=3, stride=2, padding=1)
    _shape(student, (1, 4, 40, 41), 2, kernel_size=3, stride=3, dilation=3)
    _arithmetic_only(student, "conv2d_output_shape")


@grade_cell(f"{N}_conv2d_shape_check")
@points(1)
def test_conv2d_shape_pairs(student):
    """(height, width) pairs, different along the two axes."""
    _shape(student, (2, 3, 30, 24), 5, kernel_size=(5, 1), stride=(1, 2), padding=(0, 3))
    _shape(student, (1, 2, 17, 19), 4, kernel_size=(2, 4), stride=(3, 2), dilation=(2, 1))


@grade_cell(f"{N}_conv2d_shape_check")
@points(1)
def test_conv2d_shape_same_and_valid(student):
    """padding="same" (odd and even kernels, with dilation) and padding="valid"."""
    _shape(student, (2, 3, 15, 22), 7, kernel_size=6, padding="same")
    _shape(student, (1, 1, 11, 9), 3, kernel_size=(3, 2), padding="same", dilation=2)
    _shape(student, (2, 3, 15, 22), 7, kernel_size=(4, 5), padding="valid")


# Exercise 4: same_padding (2 points) -----------------------------------------------------


def _same(student, k, d):
    got = student.run(probe_call, name="same_padding", args=[k, d])
    what = f"same_padding({k}, {d})"
    ok = isinstance(got, tuple) and len(got) == 2 and all(type(v) is int and v >= 0 for v in got)
    assert ok, f"{what} returned {got!r}, expected a pair (left, right) of ints"
    x = torch.randn(1, 1, 13, generator=torch.Generator().manual_seed(k * 10 + d))
    w = torch.randn(1, 1, k, generator=torch.Generator().manual_seed(k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = F.conv1d(x, w, padding="same", dilation=d)
    out = F.conv1d(F.pad(x, got), w, dilation=d)
    assert out.shape == want.shape, (
        f"{what} = {got}: the output has length {out.shape[-1]}, the input {x.shape[-1]}"
    )
    assert torch.allclose(out, want, atol=1e-6), (
        f"{what} = {got}: the right length, but not the values of padding='same' "
        "(which side gets the extra zero?)"
    )


@grade_cell(f"{N}_same_padding_check")
@points(1)
def test_same_padding_odd_kernels(student):
    """Odd kernels, with and without dilation: symmetric padding."""
    for k, d in [(3, 1), (7, 1), (3, 2), (5, 3)]:
        _same(student, k, d)
    _arithmetic_only(student, "same_padding")


@grade_cell(f"{N}_same_padding_check")
@points(1)
def test_same_padding_even_kernels(student):
    """Even kernels: the extra zero goes at the end, as PyTorch's padding="same"."""
    for k, d in [(2, 1), (6, 1), (4, 3)]:
        _same(student, k, d)


# Exercise 5: conv_transpose_output_size (2 points) ---------------------------------------


@grade_cell(f"{N}_transpose_size_check")
@points(1)
def test_transpose_size_strides_and_padding(student):
    """Strides and paddings without dilation or output_padding."""
    for n, k, s, p in [(8, 4, 2, 1), (5, 3, 3, 0), (10, 5, 1, 2), (1, 7, 2, 3)]:
        _expect(student, "conv_transpose_output_size", (n, k, s, p), transpose_len(n, k, s, p))
    _arithmetic_only(student, "conv_transpose_output_size")


@grade_cell(f"{N}_transpose_size_check")
@points(1)
def test_transpose_size_dilation_and_output_padding(student):
    """Dilation and output_padding."""
    for n, k, s, p, d, op in [(6, 3, 2, 1, 2, 1), (4, 2, 3, 0, 1, 2), (9, 3, 1, 0, 3, 0)]:
        want = transpose_len(n, k, s, p, d, op)
        _expect(student, "conv_transpose_output_size", (n, k, s, p, d, op), want)


# Exercise 6: restoring_output_padding (2 points) -----------------------------------------


def _restore(student, n, k, s, p, d):
    got = student.run(probe_call, name="restoring_output_padding", args=[n, k, s, p, d])
    what = f"restoring_output_padding({n}, {k}, {s}, {p}, {d})"
    assert type(got) is int, f"{what} returned {got!r}, expected an int"
    assert 0 <= got < s, f"{what} = {got}: output_padding must be between 0 and stride - 1"
    back = transpose_len(conv_len(n, k, s, p, d), k, s, p, d, got)
    assert back == n, f"{what} = {got}: length {n} comes back as {back}"


@grade_cell(f"{N}_restore_check")
@points(1)
def test_restore_stride_two(student):
    """Stride 2, odd and even lengths, different kernels and paddings."""
    for n, k, p in [(28, 4, 1), (27, 4, 1), (15, 5, 2), (16, 3, 0)]:
        _restore(student, n, k, 2, p, 1)
    _arithmetic_only(student, "restoring_output_padding")


@grade_cell(f"{N}_restore_check")
@points(1)
def test_restore_larger_strides_and_dilation(student):
    """Strides 3 and 4, with dilation."""
    for n, k, s, p, d in [(20, 3, 3, 1, 1), (21, 3, 3, 1, 1), (23, 5, 4, 2, 1), (30, 3, 4, 2, 2)]:
        _restore(student, n, k, s, p, d)
