"""Hidden tests for T01 signals: each exercise's cell gets the points of its tests.

Every test calls the student's function in the sandbox on inputs chosen here (not those of the
notebook's visible checks) and compares the result with PyTorch (`F.conv1d`, `F.conv2d`,
`F.max_pool2d`, `F.avg_pool2d`), NumPy (`np.convolve`) or torchvision (`gaussian_blur`). The
by-hand exercises also lose a point when they call a library convolution or pooling function:
read statically from the notebook source, and watched while the function runs.
"""

import ast

import numpy as np
import torch
import torch.nn.functional as F

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close

N = "t01_signals"
LIBRARY = {
    "conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d",
    "unfold", "fold", "convolve", "correlate", "convolve2d", "correlate2d", "correlate1d",
    "convolve1d", "fftconvolve", "oaconvolve", "max_pool1d", "max_pool2d", "avg_pool1d",
    "avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d", "lp_pool2d",
    "max_pool2d_with_indices", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d",
}  # fmt: skip


def probe_call(ns, name, args, kwargs=None):
    """ns[name](*args, **kwargs); a tensor comes back as it is, anything else as its type."""
    out = ns[name](*args, **(kwargs or {}))
    if isinstance(out, torch.Tensor):
        return out.detach().cpu()
    return f"a {type(out).__name__}, not a tensor"


def probe_library_calls(ns, name, args, kwargs=None):
    """The library convolution and pooling functions called while ns[name](*args) runs."""
    import numpy

    names = ["conv1d", "conv2d", "unfold", "max_pool1d", "max_pool2d", "avg_pool1d",
             "avg_pool2d", "max_pool2d_with_indices", "adaptive_max_pool2d",
             "adaptive_avg_pool2d", "convolution"]  # fmt: skip
    owners = [torch.nn.functional, torch]
    targets = [(o, n) for o in owners for n in names if hasattr(o, n)]
    targets += [(torch.Tensor, "unfold"), (numpy, "convolve"), (numpy, "correlate")]
    called, saved = [], []
    for owner, attr in targets:
        original = getattr(owner, attr)

        def wrapper(*a, _attr=attr, _original=original, **k):
            called.append(_attr)
            return _original(*a, **k)

        saved.append((owner, attr, original))
        setattr(owner, attr, wrapper)
    try:
        ns[name](*args, **(kwargs or {}))
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)
    return sorted(set(called))


def _by_hand(student, name, args, kwargs=None):
    """No library convolution or pooling, neither in the source of `name` nor while it runs."""
    tree = ast.parse(student.source(name))
    used = sorted(
        {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in LIBRARY}
        | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in LIBRARY}
    )
    assert not used, f"{name} uses {', '.join(used)}: the exercise asks for the sum by hand"
    called = student.run(probe_library_calls, name=name, args=args, kwargs=kwargs)
    assert not called, f"{name} calls {', '.join(called)} while it runs: write the sum by hand"


def _gen(seed):
    return torch.Generator().manual_seed(seed)


_by_hand.__test__ = _gen.__test__ = False  # helpers, not tests


# Exercise 1: corr1d (3 points) -----------------------------------------------------------


def _corr1d(student, x, w):
    got = student.run(probe_call, name="corr1d", args=[x, w])
    want = F.conv1d(x[None, None], w[None, None])[0, 0]
    close(got, want, f"corr1d(x of length {len(x)}, w of length {len(w)})", "F.conv1d")


@grade_cell(f"{N}_corr1d_check")
@points(1)
def test_corr1d_matches_conv1d(student):
    """corr1d agrees with F.conv1d for several signal and kernel lengths."""
    g = _gen(11)
    for n, k in [(20, 3), (33, 8), (9, 2)]:
        _corr1d(student, torch.randn(n, generator=g), torch.randn(k, generator=g))


@grade_cell(f"{N}_corr1d_check")
@points(1)
def test_corr1d_extreme_lengths(student):
    """A kernel of length 1 scales the signal; a kernel as long as the signal gives one value."""
    g = _gen(12)
    x = torch.randn(15, generator=g)
    _corr1d(student, x, torch.tensor([-2.5]))
    _corr1d(student, x, torch.randn(15, generator=g))
    _corr1d(student, torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0]), torch.tensor([2.0, -1.0]))


@grade_cell(f"{N}_corr1d_check")
@points(1)
def test_corr1d_by_hand(student):
    """corr1d computes the sum itself (no conv1d, unfold, np.convolve or np.correlate)."""
    _by_hand(student, "corr1d", [torch.randn(10), torch.randn(3)])


# Exercise 2: convolve1d (2 points) -------------------------------------------------------


def _convolve(student, x, w):
    got = student.run(probe_call, name="convolve1d", args=[x, w])
    want = torch.from_numpy(np.convolve(x.double().numpy(), w.double().numpy()))
    close(got, want, f"convolve1d(x of length {len(x)}, w of length {len(w)})", "np.convolve")


@grade_cell(f"{N}_convolve1d_check")
@points(1)
def test_convolve1d_matches_numpy(student):
    """convolve1d agrees with np.convolve (full mode) for several lengths."""
    g = _gen(21)
    for n, k in [(10, 3), (25, 6), (7, 7)]:
        _convolve(student, torch.randn(n, generator=g), torch.randn(k, generator=g))


@grade_cell(f"{N}_convolve1d_check")
@points(1)
def test_convolve1d_flips_and_long_kernels(student):
    """An antisymmetric kernel (the flip changes its sign) and a kernel longer than the signal."""
    _convolve(student, torch.arange(8.0) ** 2, torch.tensor([-1.0, 0.0, 1.0]))
    g = _gen(22)
    _convolve(student, torch.randn(4, generator=g), torch.randn(9, generator=g))


# Exercise 3: corr2d (3 points) -----------------------------------------------------------


def _corr2d(student, x, w):
    got = student.run(probe_call, name="corr2d", args=[x, w])
    want = F.conv2d(x[None, None], w[None, None])[0, 0]
    close(
        got, want, f"corr2d(x of shape {tuple(x.shape)}, w of shape {tuple(w.shape)})", "F.conv2d"
    )


@grade_cell(f"{N}_corr2d_check")
@points(1)
def test_corr2d_matches_conv2d(student):
    """corr2d agrees with F.conv2d for square and rectangular images and kernels."""
    g = _gen(31)
    for h, w, kh, kw in [(8, 9, 3, 3), (10, 7, 2, 4), (6, 6, 5, 1)]:
        _corr2d(student, torch.randn(h, w, generator=g), torch.randn(kh, kw, generator=g))


@grade_cell(f"{N}_corr2d_check")
@points(1)
def test_corr2d_extreme_shapes(student):
    """A 1x1 kernel, a kernel as large as the image, and a one-row image."""
    g = _gen(32)
    x = torch.randn(5, 7, generator=g)
    _corr2d(student, x, torch.tensor([[0.5]]))
    _corr2d(student, x, torch.randn(5, 7, generator=g))
    _corr2d(student, torch.randn(1, 10, generator=g), torch.randn(1, 3, generator=g))


@grade_cell(f"{N}_corr2d_check")
@points(1)
def test_corr2d_by_hand(student):
    """corr2d computes the sums itself (no conv2d, unfold or other library convolution)."""
    _by_hand(student, "corr2d", [torch.randn(6, 6), torch.randn(3, 3)])


# Exercise 4: corr2d_multi (2 points) -----------------------------------------------------


def _multi(student, x, w, b):
    got = student.run(probe_call, name="corr2d_multi", args=[x, w, b])
    want = F.conv2d(x[None], w, b)[0]
    what = f"corr2d_multi(x of shape {tuple(x.shape)}, w of shape {tuple(w.shape)}, b)"
    close(got, want, what, "F.conv2d", atol=1e-4)


@grade_cell(f"{N}_corr2d_multi_check")
@points(1)
def test_corr2d_multi_matches_conv2d(student):
    """Several input and output channels, square and rectangular kernels."""
    g = _gen(41)
    for cin, cout, kh, kw, h, w in [(3, 4, 3, 3, 7, 8), (2, 1, 2, 3, 5, 6)]:
        x = torch.randn(cin, h, w, generator=g)
        w = torch.randn(cout, cin, kh, kw, generator=g)
        _multi(student, x, w, torch.randn(cout, generator=g))


@grade_cell(f"{N}_corr2d_multi_check")
@points(1)
def test_corr2d_multi_adds_each_bias_once(student):
    """Each output channel's bias is added once, however many input channels there are."""
    g = _gen(42)
    x = torch.randn(4, 6, 6, generator=g)
    _multi(student, x, torch.randn(2, 4, 1, 1, generator=g), torch.tensor([3.0, -2.0]))
    _multi(student, x[:1], torch.randn(1, 1, 3, 3, generator=g), torch.tensor([1.5]))


# Exercise 5: pool2d (3 points) -----------------------------------------------------------


def _pool(student, x, size, mode):
    got = student.run(probe_call, name="pool2d", args=[x, size], kwargs={"mode": mode})
    ref = F.max_pool2d if mode == "max" else F.avg_pool2d
    want = ref(x[None, None], size)[0, 0]
    close(
        got,
        want,
        f"pool2d(x of shape {tuple(x.shape)}, {size}, mode={mode!r})",
        "F.max_pool2d" if mode == "max" else "F.avg_pool2d",
        atol=1e-6,
    )


@grade_cell(f"{N}_pool2d_check")
@points(1)
def test_max_pool(student):
    """Max pooling of all-negative images, with leftover rows and columns, and windows of 1."""
    g = _gen(51)
    for (h, w), size in [((9, 11), 2), ((10, 12), 3), ((4, 5), 1)]:
        _pool(student, torch.randn(h, w, generator=g) - 5.0, size, "max")


@grade_cell(f"{N}_pool2d_check")
@points(1)
def test_avg_pool(student):
    """Average pooling with leftover rows and columns and with exact fits."""
    g = _gen(52)
    for (h, w), size in [((10, 8), 3), ((8, 8), 4), ((5, 5), 2)]:
        _pool(student, torch.randn(h, w, generator=g), size, "avg")


@grade_cell(f"{N}_pool2d_check")
@points(1)
def test_pool_by_hand(student):
    """pool2d does not call PyTorch's pooling functions (max and avg)."""
    for mode in ("max", "avg"):
        _by_hand(student, "pool2d", [torch.randn(6, 6), 2], {"mode": mode})


# Exercise 6: gaussian_kernel (2 points) --------------------------------------------------


def _kernel(student, size, sigma):
    got = student.run(probe_call, name="gaussian_kernel", args=[size, sigma])
    what = f"gaussian_kernel({size}, {sigma})"
    assert isinstance(got, torch.Tensor), f"{what} returned {got}"
    assert tuple(got.shape) == (size, size), f"{what}: shape {tuple(got.shape)}"
    assert got.dtype == torch.float32, f"{what}: dtype {got.dtype}, expected torch.float32"
    return got, what


@grade_cell(f"{N}_gaussian_check")
@points(1)
def test_gaussian_is_normalised_and_symmetric(student):
    """The kernel sums to 1 and is symmetric under transposition and flips."""
    for size, sigma in [(3, 0.5), (7, 1.5), (11, 3.0)]:
        got, what = _kernel(student, size, sigma)
        total = got.sum().item()
        assert abs(total - 1) < 1e-5, f"{what} sums to {total:.6g}, not 1"
        close(got, got.T, what, "its own transpose", atol=1e-7)
        close(got, got.flip(0), what, "its upside-down flip", atol=1e-7)


@grade_cell(f"{N}_gaussian_check")
@points(1)
def test_gaussian_matches_torchvision(student):
    """The kernel is torchvision's Gaussian (its blur of an impulse) for several sizes, widths."""
    from torchvision.transforms.v2 import functional as TF

    for size, sigma in [(3, 0.8), (7, 1.5), (9, 3.0)]:
        got, what = _kernel(student, size, sigma)
        impulse = torch.zeros(1, 1, 3 * size, 3 * size)
        impulse[0, 0, 3 * size // 2, 3 * size // 2] = 1.0
        blurred = TF.gaussian_blur(impulse, [size, size], [sigma, sigma])[0, 0]
        lo = 3 * size // 2 - size // 2
        want = blurred[lo : lo + size, lo : lo + size]
        close(got, want, what, "torchvision's Gaussian", atol=1e-6)


# Exercise 7: apply_filter_bank (2 points) ------------------------------------------------


def _bank(student, image, kernels):
    got = student.run(probe_call, name="apply_filter_bank", args=[image, kernels])
    want = F.conv2d(image[None, None], kernels[:, None])[0]
    what = f"apply_filter_bank(image {tuple(image.shape)}, kernels {tuple(kernels.shape)})"
    close(got, want, what, "F.conv2d", atol=1e-4)


@grade_cell(f"{N}_filter_bank_check")
@points(1)
def test_filter_bank_square_kernels(student):
    """Four 5x5 kernels on a 20x17 image: one response per kernel."""
    g = _gen(71)
    _bank(student, torch.rand(20, 17, generator=g), torch.randn(4, 5, 5, generator=g))


@grade_cell(f"{N}_filter_bank_check")
@points(1)
def test_filter_bank_rectangular_and_single(student):
    """Rectangular kernels, and a bank of a single kernel (the output keeps its first axis)."""
    g = _gen(72)
    image = torch.rand(9, 12, generator=g)
    _bank(student, image, torch.randn(3, 2, 4, generator=g))
    _bank(student, image, torch.randn(1, 3, 3, generator=g))
