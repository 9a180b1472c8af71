"""Hidden tests for T03 CNNs: each exercise's cell gets the points of its tests.

Expected values come from PyTorch or SciPy, never from a formula written here: receptive fields
from which input pixels receive a gradient, rank-1 approximations from `torch.linalg.svd`,
separable filtering from `F.conv2d` with the full kernel and its cost from `FlopCounterMode`,
edge filters from `scipy.ndimage.prewitt` / `sobel`, the residual block from `F.conv2d`, and
gradient norms from `torch.autograd.grad`.
"""

import ast

import numpy as np
import scipy.ndimage
import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcourse import samples
from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close

N = "t03_cnns"
TOL = {"atol": 1e-4, "rtol": 1e-4}


def probe_call(ns, name, args, kwargs=None):
    """ns[name](*args, **kwargs): tensors, ints, floats and tuples of those come back as they are;
    anything else as a description."""
    out = ns[name](*args, **(kwargs or {}))

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
    """The source of `name` uses none of `names` (and, with "import" in names, no import)."""
    tree = ast.parse(student.source(name) or "")
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in names}
    used |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in names}
    if "import" in names and any(
        isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)
    ):
        used.add("an import")
    assert not used, f"{name} uses {', '.join(sorted(used))}: {why}"


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
    got = student.run(probe_call, name="gradient_magnitude", args=[image], kwargs=kwargs)
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


# Exercise 6: ResidualBlock (3 points) ----------------------------------------------------


def probe_block(ns, channels, x, state=None, zero_conv2=False):
    block = ns["ResidualBlock"](channels)
    with torch.no_grad():
        if state is not None:
            for name, value in state.items():
                block.get_submodule(name.rsplit(".", 1)[0]).get_parameter(
                    name.rsplit(".", 1)[1]).copy_(value)  # fmt: skip
        if zero_conv2:
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()
    x = x.clone().requires_grad_(True)
    y = block(x)
    y.sum().backward()
    return {"y": y.detach(), "dx": x.grad}


def probe_block_structure(ns, channels):
    block = ns["ResidualBlock"](channels)
    convs = {}
    for name in ("conv1", "conv2"):
        m = getattr(block, name, None)
        convs[name] = None if not isinstance(m, nn.Conv2d) else {
            "in": m.in_channels, "out": m.out_channels, "kernel": list(m.kernel_size),
            "padding": list(m.padding) if not isinstance(m.padding, str) else m.padding,
            "stride": list(m.stride), "bias": m.bias is not None,
        }  # fmt: skip
    return {"convs": convs, "params": sum(p.numel() for p in block.parameters())}


@grade_cell(f"{N}_residual_block_check")
@points(1)
def test_residual_block_forward(student):
    """With the test's weights, the block computes x + conv2(relu(conv1(x)))."""
    g = _gen(61)
    c = 3
    state = {"conv1.weight": torch.randn(c, c, 3, 3, generator=g) / 3,
             "conv1.bias": torch.randn(c, generator=g),
             "conv2.weight": torch.randn(c, c, 3, 3, generator=g) / 3,
             "conv2.bias": torch.randn(c, generator=g)}  # fmt: skip
    x = torch.randn(2, c, 8, 11, generator=g)
    got = student.run(probe_block, channels=c, x=x, state=state)["y"]
    hidden = F.relu(F.conv2d(x, state["conv1.weight"], state["conv1.bias"], padding=1))
    want = x + F.conv2d(hidden, state["conv2.weight"], state["conv2.bias"], padding=1)
    close(got, want, "ResidualBlock(3) on a (2, 3, 8, 11) input",
           "x + conv2(relu(conv1(x)))", **TOL)  # fmt: skip


@grade_cell(f"{N}_residual_block_check")
@points(1)
def test_residual_block_identity_path(student):
    """With conv2 zeroed the block is the identity, and its Jacobian is the identity."""
    x = torch.randn(1, 5, 6, 7, generator=_gen(62))
    got = student.run(probe_block, channels=5, x=x, zero_conv2=True)
    close(got["y"], x, "ResidualBlock(5) with conv2 = 0", "its input x", atol=1e-6)
    assert got["dx"] is not None, "no gradient reached the block's input"
    close(got["dx"], torch.ones_like(x), "the gradient of sum(block(x)) with conv2 = 0",
           "all ones", atol=1e-6)  # fmt: skip


@grade_cell(f"{N}_residual_block_check")
@points(1)
def test_residual_block_structure(student):
    """conv1 and conv2 are 3x3 convolutions from and to `channels`, padding 1, with bias."""
    got = student.run(probe_block_structure, channels=6)
    want = {"in": 6, "out": 6, "kernel": [3, 3], "padding": [1, 1], "stride": [1, 1], "bias": True}
    for name, conv in got["convs"].items():
        assert conv is not None, f"ResidualBlock(6).{name} is not an nn.Conv2d"
        assert conv == want, f"ResidualBlock(6).{name}: {conv}, expected {want}"
    expected = sum(p.numel() for p in nn.Conv2d(6, 6, 3, padding=1).parameters()) * 2
    assert got["params"] == expected, (
        f"ResidualBlock(6) has {got['params']} parameters, expected {expected}"
    )


# Exercise 7: layer_grad_norms (2 points) -------------------------------------------------


def probe_grad_norms(ns, state, x, y, stale=False):
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.Sequential(nn.Conv2d(4, 3, 1), nn.ReLU()), nn.Flatten(), nn.Linear(3 * 6 * 6, 5),
    )  # fmt: skip
    model.load_state_dict(state)
    if stale:  # gradients left over from an earlier, different pass
        (model(x * 3.0) ** 2).sum().backward()
    out = ns["layer_grad_norms"](model, x, y)
    if isinstance(out, list | tuple) and all(type(v) is float for v in out):
        return list(out)
    return f"{out!r} (a {type(out).__name__})"[:200]


def _reference_model():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.Sequential(nn.Conv2d(4, 3, 1), nn.ReLU()), nn.Flatten(), nn.Linear(3 * 6 * 6, 5),
    )  # fmt: skip


_reference_model.__test__ = False


def _grad_norms(student, seed, stale):
    torch.manual_seed(seed)
    model = _reference_model()
    x, y = torch.randn(6, 2, 8, 8), torch.randint(0, 5, (6,))
    got = student.run(probe_grad_norms, state=model.state_dict(), x=x, y=y, stale=stale)
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    want = [g.norm().item() for g in torch.autograd.grad(F.cross_entropy(model(x), y), convs)]
    what = "layer_grad_norms on a network of three convolutions (one nested)"
    if stale:
        what += ", with gradients left from an earlier pass"
    assert isinstance(got, list), f"{what} returned {got}, expected a list of floats"
    assert len(got) == 3, f"{what}: {len(got)} norms, expected one per convolution (3)"
    close(torch.tensor(got), torch.tensor(want), what, "torch.autograd.grad", atol=0, rtol=1e-4)


@grade_cell(f"{N}_grad_norms_check")
@points(1)
def test_grad_norms_match_autograd(student):
    """One norm per nn.Conv2d, nested ones included, in modules() order."""
    _grad_norms(student, seed=71, stale=False)


@grade_cell(f"{N}_grad_norms_check")
@points(1)
def test_grad_norms_zero_old_gradients(student):
    """Gradients already in the model do not add to the measured ones."""
    _grad_norms(student, seed=72, stale=True)
