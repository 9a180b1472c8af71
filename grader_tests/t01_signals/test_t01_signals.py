"""Hidden tests for T01 signals: each exercise's cell gets the points of its tests.

Every test calls the student's function in the sandbox on inputs chosen here (not those of the
notebook's visible checks) and compares the result with PyTorch (`F.conv1d`, `F.conv2d`,
`F.max_pool2d`, `F.avg_pool2d`, autograd, layers' parameter counts), NumPy (`np.convolve`),
torchvision (`gaussian_blur`) or a value derived by hand. The by-hand exercises also lose a point
when they call a library convolution or pooling function (read statically from the notebook
source, and watched while the function runs), the gradients when they use autograd. Exercises
built on earlier ones (convolve1d on corr1d, corr2d_multi on corr2d, corr1d_backward on both 1-D
ones) run with correct versions of those in place of the student's, so one mistake costs one
exercise's marks.
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


def probe_call(ns, name, args, kwargs=None, reference=()):
    """ns[name](*args, **kwargs), with the earlier exercises named in `reference` replaced by
    correct versions while it runs, so that a mistake in one exercise costs only its own marks.
    Tensors come back as they are, numbers as numbers, tuples and lists as tuples of those,
    anything else as a description."""

    def corr1d(x, w):
        return F.conv1d(x[None, None], w[None, None])[0, 0]

    def convolve1d(x, w):
        k = len(w)
        return F.conv1d(F.pad(x, (k - 1, k - 1))[None, None], w.flip(0)[None, None])[0, 0]

    def corr2d(x, w):
        return F.conv2d(x[None, None], w[None, None])[0, 0]

    correct = {"corr1d": corr1d, "convolve1d": convolve1d, "corr2d": corr2d}
    from dlcourse.grading.probing import call_with

    out = call_with(ns[name], correct, reference, *args, **(kwargs or {}))

    def plain(v):
        if isinstance(v, torch.Tensor):
            return v.detach().cpu()
        if type(v) in (int, float):
            return v
        if isinstance(v, tuple | list):
            return tuple(plain(e) for e in v)
        return f"a {type(v).__name__}, not a tensor"

    return plain(out)


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
    got = student.run(probe_call, name="convolve1d", args=[x, w], reference=["corr1d"])
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


# Exercise 3: corr1d_backward (3 points) --------------------------------------------------

AUTOGRAD = {"backward", "autograd", "grad", "requires_grad", "requires_grad_", "enable_grad",
            "func", "vjp", "jacobian", "functional"}  # fmt: skip


def _no_autograd(student, name):
    """`name` computes its gradients itself: no autograd in its source."""
    tree = ast.parse(student.source(name))
    used = sorted(
        {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in AUTOGRAD}
        | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in AUTOGRAD}
    )
    assert not used, f"{name} uses {', '.join(used)}: the exercise asks for the gradients by hand"


_no_autograd.__test__ = False


def _autograd_corr1d(x, w, g):
    x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    F.conv1d(x[None, None], w[None, None])[0, 0].backward(g)
    return x.grad, w.grad


def _backward(student, x, w, g, want=None):
    what = f"corr1d_backward(x of length {len(x)}, w of length {len(w)}, g)"
    got = student.run(probe_call, name="corr1d_backward", args=[x, w, g],
                      reference=["corr1d", "convolve1d"])  # fmt: skip
    assert isinstance(got, tuple) and len(got) == 2, f"{what} returned {got!r}, not a pair"[:300]
    want = want or _autograd_corr1d(x, w, g)
    close(got[0], want[0], f"{what}: grad_x", "autograd through F.conv1d", atol=1e-4)
    close(got[1], want[1], f"{what}: grad_w", "autograd through F.conv1d", atol=1e-4)


@grade_cell(f"{N}_corr1d_backward_check")
@points(1)
def test_corr1d_backward_matches_autograd(student):
    """Both gradients agree with autograd through F.conv1d for several lengths."""
    g = _gen(13)
    for n, k in [(10, 3), (17, 6), (8, 2)]:
        x, w = torch.randn(n, generator=g), torch.randn(k, generator=g)
        _backward(student, x, w, torch.randn(n - k + 1, generator=g))


@grade_cell(f"{N}_corr1d_backward_check")
@points(1)
def test_corr1d_backward_one_hot(student):
    """A gradient of 1 at output i: grad_w is the window x[i:i+k], grad_x the kernel placed at i."""
    x, w = torch.tensor([2.0, -1.0, 4.0, 0.5, 3.0, -2.0]), torch.tensor([1.0, -3.0, 2.0])
    for i in range(4):
        g = torch.zeros(4)
        g[i] = 1.0
        grad_x = torch.zeros(6)
        grad_x[i : i + 3] = w
        _backward(student, x, w, g, want=(grad_x, x[i : i + 3]))


@grade_cell(f"{N}_corr1d_backward_check")
@points(1)
def test_corr1d_backward_extreme_lengths(student):
    """A kernel as long as the signal (one output) and a kernel of length 1; no autograd."""
    g = _gen(14)
    x = torch.randn(9, generator=g)
    _backward(student, x, torch.randn(9, generator=g), torch.tensor([1.5]))
    _backward(student, x, torch.tensor([-0.5]), torch.randn(9, generator=g))
    _no_autograd(student, "corr1d_backward")


# Exercise 4: corr2d (3 points) -----------------------------------------------------------


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


# Exercise 5: corr2d_multi (2 points) -----------------------------------------------------


def _multi(student, x, w, b):
    got = student.run(probe_call, name="corr2d_multi", args=[x, w, b], reference=["corr2d"])
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


# Exercise 6: pool2d (3 points) -----------------------------------------------------------


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


# Exercise 7: POOL_BY_HAND and pool2d_strided (3 points) ----------------------------------

HAND_X = torch.tensor([[1.0, 3, 2, 0, 4], [5, 0, 1, 6, 2], [2, 7, 3, 1, 0], [0, 1, 8, 2, 5],
                       [4, 2, 0, 3, 1]])  # fmt: skip


def _strided(student, x, size, stride, mode):
    got = student.run(probe_call, name="pool2d_strided", args=[x, size, stride],
                      kwargs={"mode": mode})  # fmt: skip
    ref = F.max_pool2d if mode == "max" else F.avg_pool2d
    want = ref(x[None, None], size, stride)[0, 0]
    what = f"pool2d_strided(x of shape {tuple(x.shape)}, {size}, {stride}, mode={mode!r})"
    close(got, want, what, f"F.{ref.__name__}(x, {size}, {stride})", atol=1e-6)


@grade_cell(f"{N}_pool2d_strided_check")
@points(1)
def test_pool_answer_worked_by_hand(student):
    """POOL_BY_HAND is the 3x3, stride-2 max pooling of the notebook's 5x5 matrix."""
    found, got = student.literal("POOL_BY_HAND")
    assert found, "POOL_BY_HAND is not answered: write POOL_BY_HAND = [[a, b], [c, d]]"
    want = F.max_pool2d(HAND_X[None, None], 3, 2)[0, 0]
    rows = [list(r) for r in got] if isinstance(got, list | tuple) else None
    ok = rows is not None and len(rows) == 2 and all(len(r) == 2 for r in rows)
    assert ok, f"POOL_BY_HAND should be a 2x2 nested list, got {got!r}"[:200]
    wrong = [f"[{i}][{j}] = {rows[i][j]!r} (it is {int(want[i, j])})" for i in range(2)
             for j in range(2) if rows[i][j] != want[i, j].item()]  # fmt: skip
    assert not wrong, "POOL_BY_HAND: " + "; ".join(wrong)


@grade_cell(f"{N}_pool2d_strided_check")
@points(1)
def test_pool_strided_overlapping(student):
    """Windows larger than the stride, max and average, with leftover rows and columns."""
    g = _gen(53)
    for (h, w), size, stride in [((9, 9), 3, 2), ((10, 13), 4, 3), ((8, 11), 5, 2)]:
        x = torch.randn(h, w, generator=g) - 2.0
        for mode in ("max", "avg"):
            _strided(student, x, size, stride, mode)


@grade_cell(f"{N}_pool2d_strided_check")
@points(1)
def test_pool_strided_gaps_and_by_hand(student):
    """Strides larger than the window (gaps), windows of 1, and no library pooling."""
    g = _gen(54)
    x = torch.randn(11, 10, generator=g)
    for size, stride in [(2, 3), (1, 4), (3, 3)]:
        _strided(student, x, size, stride, "max")
    _strided(student, x, 2, 3, "avg")
    for mode in ("max", "avg"):
        _by_hand(student, "pool2d_strided", [torch.randn(7, 7), 3, 2], {"mode": mode})


# Exercise 8: gaussian_kernel (2 points) --------------------------------------------------


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


# Exercise 9: apply_filter_bank (2 points) ------------------------------------------------


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


# Exercise 10: relative_contrast and parameter_counts (3 points) ---------------------------


@grade_cell(f"{N}_why_cnns_check")
@points(1)
def test_relative_contrast(student):
    """(max - min) / min of the Euclidean distances, against torch.cdist, and a case by hand."""
    g = _gen(101)
    cases = [(torch.rand(50, 3, generator=g), torch.rand(3, generator=g)),
             (torch.randn(200, 40, generator=g), torch.randn(40, generator=g)),
             (torch.tensor([[2.0, 0.0], [0.0, 3.0], [-6.0, 0.0]]), torch.zeros(2))]  # fmt: skip
    for points_, query in cases:
        got = student.run(probe_call, name="relative_contrast", args=[points_, query])
        dist = torch.cdist(query[None].double(), points_.double())[0]
        want = ((dist.max() - dist.min()) / dist.min()).item()
        what = f"relative_contrast({len(points_)} points in {points_.shape[1]} dimensions)"
        close(got, want, what, "torch.cdist's distances", atol=1e-5, rtol=1e-5)


def _counts(student, c_in, c_out, h, w, k):
    got = student.run(probe_call, name="parameter_counts", args=[c_in, c_out, h, w, k])
    what = f"parameter_counts({c_in}, {c_out}, {h}, {w}, {k})"
    ok = isinstance(got, tuple) and len(got) == 2 and all(type(v) is int for v in got)
    assert ok, f"{what} returned {got!r}, expected a pair of ints (dense, conv)"
    return got, what


@grade_cell(f"{N}_why_cnns_check")
@points(1)
def test_parameter_counts_small_layers(student):
    """Small layers: the counts of nn.Linear and nn.Conv2d themselves (weights and biases)."""
    layers = [(1, 1, 3, 3, 3), (2, 5, 4, 6, 1), (3, 4, 5, 5, 5), (4, 2, 2, 7, 2)]
    for c_in, c_out, h, w, k in layers:
        got, what = _counts(student, c_in, c_out, h, w, k)
        dense = sum(p.numel() for p in torch.nn.Linear(c_in * h * w, c_out * h * w).parameters())
        conv = sum(p.numel() for p in torch.nn.Conv2d(c_in, c_out, k).parameters())
        assert got == (dense, conv), f"{what} = {got}; nn.Linear and nn.Conv2d have {(dense, conv)}"


@grade_cell(f"{N}_why_cnns_check")
@points(1)
def test_parameter_counts_large_image(student):
    """A 224x224 colour image (counted by hand: weights plus one bias per output), in plain
    integer arithmetic."""
    got, what = _counts(student, 3, 64, 224, 224, 7)
    n_in, n_out = 3 * 224 * 224, 64 * 224 * 224
    want = (n_in * n_out + n_out, 64 * 3 * 7 * 7 + 64)
    assert got == want, f"{what} = {got}, expected {want}"
    tree = ast.parse(student.source("parameter_counts"))
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in {"torch", "nn"}}
    assert not used, "parameter_counts builds layers with torch; count with integer arithmetic"


# Exercise 11: siamese_backward (3 points) -------------------------------------------------


def _siamese_reference(W, b, x1, x2):
    Wa, ba = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    loss = 0.5 * ((torch.tanh(Wa @ x1 + ba) - torch.tanh(Wa @ x2 + ba)) ** 2).sum()
    loss.backward()
    return loss.detach(), Wa.grad, ba.grad


def _siamese(student, W, b, x1, x2, parts=("loss", "grad_W", "grad_b")):
    what = f"siamese_backward(W {tuple(W.shape)}, b, x1, x2)"
    got = student.run(probe_call, name="siamese_backward", args=[W, b, x1, x2])
    ok = isinstance(got, tuple) and len(got) == 3
    assert ok, f"{what} returned {got!r}, not (loss, grad_W, grad_b)"[:300]
    want = _siamese_reference(W, b, x1, x2)
    for label, g, w in zip(("loss", "grad_W", "grad_b"), got, want, strict=True):
        if label in parts:
            close(g, w, f"{what}: {label}", "autograd", atol=1e-9, rtol=1e-7)


def _siamese_inputs(seed, h, d):
    g = _gen(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in [(h, d), (h,), (d,), (d,)]]


@grade_cell(f"{N}_siamese_check")
@points(1)
def test_siamese_loss(student):
    """The loss 1/2 |tanh(W x1 + b) - tanh(W x2 + b)|^2."""
    for seed, (h, d) in [(111, (2, 3)), (112, (5, 1)), (113, (4, 6))]:
        _siamese(student, *_siamese_inputs(seed, h, d), parts=("loss",))


@grade_cell(f"{N}_siamese_check")
@points(1)
def test_siamese_gradients(student):
    """grad_W and grad_b against autograd: both branches' contributions added."""
    for seed, (h, d) in [(121, (3, 2)), (122, (6, 5)), (123, (1, 4))]:
        _siamese(student, *_siamese_inputs(seed, h, d), parts=("grad_W", "grad_b"))


@grade_cell(f"{N}_siamese_check")
@points(1)
def test_siamese_special_inputs_without_autograd(student):
    """A zero input in one branch (its weight gradient is zero, its bias gradient is not), equal
    inputs (everything zero), and no autograd in the function."""
    W, b, x1, _ = _siamese_inputs(131, 3, 4)
    _siamese(student, W, b, x1, torch.zeros(4, dtype=torch.float64))
    _siamese(student, W, b, x1, x1.clone())
    _no_autograd(student, "siamese_backward")
