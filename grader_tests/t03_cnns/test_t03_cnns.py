"""Hidden tests for T03 CNNs: each exercise's cell gets the points of its tests.

Expected values come from PyTorch or SciPy, or are derived by hand, never from the student's
code: receptive fields from which input pixels receive a gradient, rank-1 approximations from
`torch.linalg.svd`, separable filtering from `F.conv2d` with the full kernel and its cost from
`FlopCounterMode`, edge filters from `scipy.ndimage.prewitt` / `sobel`, and the variance of an
average from its formula. `gradient_magnitude` runs with a correct `edge_kernels`, so a mistake
in Exercise 4 costs only Exercise 4's points.
"""

import numpy as np
import scipy.ndimage
import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcourse import samples
from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close
from dlcourse.grading.probing import assert_avoids

N = "t03_cnns"
TOL = {"atol": 1e-4, "rtol": 1e-4}


def probe_call(ns, name, args, kwargs=None, reference=()):
    """ns[name](*args, **kwargs), with the earlier exercises named in `reference` replaced by
    correct versions while it runs (gradient_magnitude builds on edge_kernels: one mistake costs
    one exercise's marks). Tensors, ints, floats and tuples of those come back as they are;
    anything else as a description."""

    def edge_kernels(kind="sobel"):
        s = torch.tensor([1.0, 1.0, 1.0]) if kind == "prewitt" else torch.tensor([1.0, 2.0, 1.0])
        d = torch.tensor([-1.0, 0.0, 1.0])
        return torch.stack([torch.outer(s, d), torch.outer(d, s)])

    correct = {"edge_kernels": edge_kernels}
    from dlcourse.grading.probing import call_with

    out = call_with(ns[name], correct, reference, *args, **(kwargs or {}))

    def plain(v):
        if isinstance(v, torch.Tensor):
            return v.detach().cpu()
        if type(v) in (int, float):
            return v
        if isinstance(v, tuple | list):
            return tuple(plain(e) for e in v)
        return f"{v!r} (a {type(v).__name__})"[:200]

    return plain(out)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _avoids(student, name, names, why):
    assert_avoids(student.source(name), name, names, why)


_gen.__test__ = _avoids.__test__ = False  # helpers, not tests


# Exercise 1: receptive_field (3 points) --------------------------------------------------


def measured_rf(layers, size=160):
    """Width of the input region that reaches the centre output (non-zero gradient), for
    convolutions of all-one weights with each layer's kernel, stride and dilation."""
    convs = []
    for layer in layers:
        k, s, d = (tuple(layer) + (1,))[:3]
        conv = nn.Conv2d(1, 1, k, stride=s, dilation=d, bias=False)
        nn.init.constant_(conv.weight, 1.0)
        convs.append(conv)
    x = torch.ones(1, 1, size, size, requires_grad=True)
    y = nn.Sequential(*convs)(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    cols = x.grad[0, 0].abs().sum(dim=0).nonzero()
    return int(cols.max() - cols.min() + 1)


measured_rf.__test__ = False


def _rf(student, layers):
    got = student.run(probe_call, name="receptive_field", args=[layers])
    want = measured_rf(layers)
    assert got == want and type(got) is int, (
        f"receptive_field({layers}) returned {got!r}, the measured receptive field is {want}"
    )


@grade_cell(f"{N}_receptive_field_check")
@points(1)
def test_receptive_field_stride_one(student):
    """Stacks of stride-1 layers: the field grows by k - 1 per layer (computed, not measured)."""
    for layers in ([(3, 1)] * 4, [(5, 1), (3, 1)], [(1, 1)], [(7, 1), (1, 1), (4, 1)]):
        _rf(student, layers)
    _avoids(student, "receptive_field", {"torch", "nn", "F", "filters", "import"},
            "the exercise asks for the formula, not a measurement")  # fmt: skip


@grade_cell(f"{N}_receptive_field_check")
@points(1)
def test_receptive_field_strides_and_pooling(student):
    """Strided layers and pooling windows multiply what later layers add."""
    for layers in ([(3, 2)] * 3, [(7, 2), (3, 1), (2, 2), (3, 1)], [(4, 4), (3, 1)]):
        _rf(student, layers)


@grade_cell(f"{N}_receptive_field_check")
@points(1)
def test_receptive_field_dilation(student):
    """Dilated layers (k, s, d), mixed with (k, s) layers."""
    for layers in ([(3, 1, 2), (3, 1, 2)], [(3, 2, 1), (3, 1, 3), (2, 2)],
                   [(3, 1, 1), (3, 1, 2), (3, 1, 4), (3, 1, 8)]):  # fmt: skip
        _rf(student, layers)


# Exercise 2: separate (3 points) ---------------------------------------------------------


def _separate(student, kernel):
    got = student.run(probe_call, name="separate", args=[kernel])
    what = f"separate(a {kernel.shape[0]}x{kernel.shape[1]} kernel)"
    ok = isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)
    assert ok, f"{what} returned {got!r}, expected a pair (u, v) of tensors"
    u, v = got
    assert tuple(u.shape) == (kernel.shape[0],) and tuple(v.shape) == (kernel.shape[1],), (
        f"{what}: u of shape {tuple(u.shape)} and v of shape {tuple(v.shape)}, expected "
        f"({kernel.shape[0]},) and ({kernel.shape[1]},)"
    )
    return torch.outer(u, v), what


@grade_cell(f"{N}_separate_check")
@points(1)
def test_separate_square_separable(student):
    """Square rank-1 kernels come back exactly."""
    g = _gen(21)
    binomial = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    derivative = torch.tensor([-1.0, -2.0, 0.0, 2.0, 1.0])
    for kernel in (torch.outer(torch.randn(4, generator=g), torch.randn(4, generator=g)),
                   torch.outer(binomial, derivative) / 16):  # fmt: skip
        product, what = _separate(student, kernel)
        close(product, kernel, f"outer(u, v) of {what}", "the kernel itself")


@grade_cell(f"{N}_separate_check")
@points(1)
def test_separate_rectangular_separable(student):
    """Rectangular rank-1 kernels: u has the kernel's height, v its width."""
    g = _gen(22)
    for h, w in [(2, 6), (7, 3)]:
        kernel = torch.outer(torch.randn(h, generator=g), torch.randn(w, generator=g))
        product, what = _separate(student, kernel)
        close(product, kernel, f"outer(u, v) of {what}", "the kernel itself")


@grade_cell(f"{N}_separate_check")
@points(1)
def test_separate_best_rank_one(student):
    """Kernels of higher rank: outer(u, v) is the SVD's best rank-1 approximation."""
    g = _gen(23)
    for h, w in [(4, 4), (5, 3)]:
        kernel = torch.randn(h, w, generator=g)
        U, S, Vh = torch.linalg.svd(kernel)
        product, what = _separate(student, kernel)
        close(product, S[0] * torch.outer(U[:, 0], Vh[0]), f"outer(u, v) of {what}",
               "the best rank-1 approximation (SVD)")  # fmt: skip


# Exercise 3: separable_conv2d (2 points) -------------------------------------------------


def probe_separable_flops(ns, image, u, v):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        ns["separable_conv2d"](image, u, v)
    return int(counter.get_total_flops())


@grade_cell(f"{N}_separable_conv_check")
@points(1)
def test_separable_conv_values(student):
    """The result equals F.conv2d with the full kernel outer(u, v)."""
    g = _gen(31)
    for (h, w), (kh, kw) in [((15, 22), (3, 5)), ((9, 9), (9, 1)), ((30, 12), (7, 7))]:
        image, u, v = (torch.randn(h, w, generator=g), torch.randn(kh, generator=g),
                       torch.randn(kw, generator=g))  # fmt: skip
        got = student.run(probe_call, name="separable_conv2d", args=[image, u, v])
        want = F.conv2d(image[None, None], torch.outer(u, v)[None, None])[0, 0]
        what = f"separable_conv2d(image {h}x{w}, u of length {kh}, v of length {kw})"
        close(got, want, what, "F.conv2d with outer(u, v)", **TOL)


@grade_cell(f"{N}_separable_conv_check")
@points(1)
def test_separable_conv_cost(student):
    """It costs the multiplies of two 1-D passes (FlopCounterMode), not those of the 9x9 kernel."""
    h = w = 40
    k = 9
    g = _gen(32)
    image, u, v = (
        torch.randn(h, w, generator=g),
        torch.randn(k, generator=g),
        torch.randn(k, generator=g),
    )
    flops = student.run(probe_separable_flops, image=image, u=u, v=v)
    full = 2 * k * k * (h - k + 1) * (w - k + 1)
    # Vertical pass first: k per pixel of an (h - k + 1) x w image, then k per output pixel; the
    # other order costs the same here (square image and kernel).
    two_passes = 2 * (k * (h - k + 1) * w + k * (h - k + 1) * (w - k + 1))
    assert 0 < flops <= two_passes, (
        f"separable_conv2d on a 40x40 image with 9-tap u and v: {flops / 2:,.0f} multiply-adds; "
        f"two 1-D passes take {two_passes / 2:,.0f}, the full 9x9 kernel {full / 2:,.0f}"
    )


# Exercise 4: edge_kernels (2 points) -----------------------------------------------------


def _edges(student, kind):
    got = student.run(probe_call, name="edge_kernels", args=[kind])
    what = f"edge_kernels({kind!r})"
    assert isinstance(got, torch.Tensor), f"{what} returned {got!r}"
    assert tuple(got.shape) == (2, 3, 3), f"{what}: shape {tuple(got.shape)}, expected (2, 3, 3)"
    image = torch.rand(12, 15, generator=_gen(41), dtype=torch.float64)
    padded = F.pad(image[None, None], (1, 1, 1, 1), mode="replicate")
    responses = F.conv2d(padded, got.double()[:, None])[0]
    reference = getattr(scipy.ndimage, kind)
    for i, (name, axis) in enumerate([("G_x", 1), ("G_y", 0)]):
        want = torch.from_numpy(reference(image.numpy(), axis=axis, mode="nearest"))
        close(responses[i], want, f"{what}[{i}] ({name}) on an image",
               f"scipy.ndimage.{kind}(axis={axis})", atol=1e-6)  # fmt: skip


@grade_cell(f"{N}_edge_kernels_check")
@points(1)
def test_edge_kernels_prewitt(student):
    """Prewitt G_x and G_y filter an image as scipy.ndimage.prewitt does (axis 1 and 0)."""
    _edges(student, "prewitt")


@grade_cell(f"{N}_edge_kernels_check")
@points(1)
def test_edge_kernels_sobel(student):
    """Sobel G_x and G_y filter an image as scipy.ndimage.sobel does (axis 1 and 0)."""
    _edges(student, "sobel")


# Exercise 5: gradient_magnitude (2 points) -----------------------------------------------


def _magnitude(student, image, kind):
    kwargs = {} if kind is None else {"kind": kind}
    got = student.run(probe_call, name="gradient_magnitude", args=[image], kwargs=kwargs,
                      reference=["edge_kernels"])  # fmt: skip
    kind = kind or "sobel"
    x = image.double().numpy()
    reference = getattr(scipy.ndimage, kind)
    want = np.hypot(reference(x, axis=1, mode="nearest"), reference(x, axis=0, mode="nearest"))
    what = f"gradient_magnitude(image {tuple(image.shape)}{'' if not kwargs else f', {kind!r}'})"
    close(got, torch.from_numpy(want), what, f"scipy.ndimage.{kind}", **TOL)


@grade_cell(f"{N}_gradient_magnitude_check")
@points(1)
def test_gradient_magnitude_prewitt(student):
    """Prewitt magnitude of a random image, with the replicated border (without SciPy)."""
    _magnitude(student, torch.rand(23, 31, generator=_gen(51)), "prewitt")
    _avoids(student, "gradient_magnitude", {"scipy", "ndimage", "sobel", "prewitt", "import"},
            "the exercise asks for your edge_kernels with F.conv2d")  # fmt: skip


@grade_cell(f"{N}_gradient_magnitude_check")
@points(1)
def test_gradient_magnitude_sobel_default(student):
    """Sobel (the default kind) on the photograph at another size and on a random image."""
    _magnitude(student, samples.photograph(size=48), None)
    _magnitude(student, torch.rand(17, 9, generator=_gen(52)), "sobel")


# Exercise 6: variance_of_average (2 points) ----------------------------------------------


def _variance(student, sigma, n, rho=None):
    args = [sigma, n] if rho is None else [sigma, n, rho]
    got = student.run(probe_call, name="variance_of_average", args=args)
    rho = 0.0 if rho is None else rho
    want = sigma**2 * (rho + (1 - rho) / n)  # sum of the n^2 covariances over n^2, by hand
    what = f"variance_of_average({', '.join(map(repr, args))})"
    assert type(got) is float, f"{what} returned {got!r}, expected a float"
    close(got, want, what, "the variance of the average", atol=1e-12, rtol=1e-9)


@grade_cell(f"{N}_variance_of_average_check")
@points(1)
def test_variance_of_average_independent(student):
    """Independent noise: sigma^2 / n (rho left at its default)."""
    for sigma, n in [(1.0, 1), (0.3, 9), (2.0, 50), (0.05, 1000)]:
        _variance(student, sigma, n)


@grade_cell(f"{N}_variance_of_average_check")
@points(1)
def test_variance_of_average_correlated(student):
    """Correlated noise: sigma^2 (rho + (1 - rho) / n), which keeps rho sigma^2 for large n."""
    for sigma, n, rho in [(1.0, 4, 0.5), (0.2, 30, 0.1), (3.0, 2, 0.9), (0.5, 10**6, 0.25),
                          (1.5, 7, 0.0)]:  # fmt: skip
        _variance(student, sigma, n, rho)
