"""Hidden tests for T03b Training CNNs: each exercise's cell gets the points of its tests.

Expected values come from PyTorch or are derived by hand, never from the student's code: shift
errors from the same maps measured by the definitions written here, augmented images by matching
every allowed flip and shift, the residual block from `F.conv2d`, gradient norms and the softmax
Jacobian from autograd, and floating-point spacing from `torch.nextafter`.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close
from dlcourse.grading.probing import assert_avoids

N = "t03b_training_cnns"
TOL = {"atol": 1e-4, "rtol": 1e-4}


def probe_call(ns, name, args):
    """ns[name](*args): a tensor comes back as it is, anything else as a description."""
    out = ns[name](*args)
    if isinstance(out, torch.Tensor):
        return out.detach().cpu()
    return f"{out!r} (a {type(out).__name__})"[:200]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _avoids(student, name, names, why):
    assert_avoids(student.source(name), name, names, why)


_gen.__test__ = _avoids.__test__ = False  # helpers, not tests


# Exercise 1: equivariance_error and invariance_error (3 points) --------------------------


def probe_shift_error(ns, which, kind, weight, x, shift, out_shift=None):
    """ns[which](f, x, shift[, out_shift]) for the map f named by `kind`, built here from
    `weight`: the grader calls this function itself on its own definitions for the expected
    value, so both sides measure the same map."""

    def circular(t):
        return F.conv2d(F.pad(t, (1, 1, 1, 1), mode="circular"), weight)

    maps = {
        "circular conv": circular,
        "zero-padded conv": lambda t: F.conv2d(t, weight, padding=1),
        "max-pool 2": lambda t: F.max_pool2d(t, 2),
        "global average of circular conv": lambda t: circular(t).mean(dim=(2, 3)),
        "mask": lambda t: t * weight,
        "flatten and linear": lambda t: t.flatten(1) @ weight,
    }
    args = [maps[kind], x, shift] + ([out_shift] if out_shift is not None else [])
    out = ns[which](*args)
    return out if type(out) is float else f"{out!r} (a {type(out).__name__})"[:200]


def _reference_equivariance_error(f, x, shift, out_shift=None):
    out = f(x)
    moved = torch.roll(out, shift if out_shift is None else out_shift, dims=(2, 3))
    return float((f(torch.roll(x, shift, dims=(2, 3))) - moved).norm() / out.norm())


def _reference_invariance_error(f, x, shift):
    out = f(x)
    return float((f(torch.roll(x, shift, dims=(2, 3))) - out).norm() / out.norm())


REFERENCE_SHIFTS = {"equivariance_error": _reference_equivariance_error,
                    "invariance_error": _reference_invariance_error}  # fmt: skip


def _shift_error(student, which, kind, weight, x, shift, out_shift=None, near_zero=False):
    kwargs = {"which": which, "kind": kind, "weight": weight, "x": x, "shift": shift,
              "out_shift": out_shift}  # fmt: skip
    got = student.run(probe_shift_error, **kwargs)
    with torch.no_grad():
        want = probe_shift_error(REFERENCE_SHIFTS, **kwargs)
    extra = "" if out_shift is None else f", out_shift={out_shift}"
    what = f"{which}({kind}, x of shape {tuple(x.shape)}, shift={shift}{extra})"
    assert type(got) is float, f"{what} returned {got}, expected a float"
    if near_zero:  # exact equivariance or invariance: only rounding error is left
        assert want < 1e-5 and abs(got) < 1e-5, f"{what} = {got:.3g}, expected 0 (below 1e-5)"
    else:
        close(got, want, what, "the same map measured here", atol=1e-6, rtol=1e-4)


def _shift_inputs(seed, c_out=4):
    g = _gen(seed)
    return torch.randn(3, 2, 10, 12, generator=g), torch.randn(c_out, 2, 3, 3, generator=g)


@grade_cell(f"{N}_shift_errors_check")
@points(1)
def test_equivariance_of_convolutions_and_pooling(student):
    """Circular convolution: 0 for any shift; zero padding: the border's error; max-pooling with
    stride 2: 0 for even shifts with half the shift at the output."""
    x, w = _shift_inputs(71)
    for shift in [(1, 2), (-3, 4)]:
        _shift_error(student, "equivariance_error", "circular conv", w, x, shift, near_zero=True)
    _shift_error(student, "equivariance_error", "zero-padded conv", w, x, (2, -1))
    _shift_error(student, "equivariance_error", "max-pool 2", w, x, (2, 4), (1, 2), near_zero=True)
    _shift_error(student, "equivariance_error", "max-pool 2", w, x, (1, 3), (0, 1))


@grade_cell(f"{N}_shift_errors_check")
@points(1)
def test_invariance(student):
    """Global average pooling of a circular convolution: 0; max-pooling alone: its error."""
    x, w = _shift_inputs(72)
    for shift in [(4, 1), (-2, -5)]:
        _shift_error(student, "invariance_error", "global average of circular conv", w, x, shift,
                     near_zero=True)  # fmt: skip
    _shift_error(student, "invariance_error", "max-pool 2", w, x, (1, 1))


@grade_cell(f"{N}_shift_errors_check")
@points(1)
def test_shift_errors_of_maps_that_are_neither(student):
    """A fixed mask and a flatten-then-linear map: both errors have their measured values."""
    x, _ = _shift_inputs(73)
    g = _gen(74)
    mask = (torch.rand(1, 1, 10, 12, generator=g) > 0.5).float()
    _shift_error(student, "equivariance_error", "mask", mask, x, (3, 0))
    _shift_error(student, "invariance_error", "mask", mask, x, (0, -2))
    linear = torch.randn(2 * 10 * 12, 5, generator=g)
    _shift_error(student, "invariance_error", "flatten and linear", linear, x, (1, 1))


# Exercise 2: augment (3 points) ----------------------------------------------------------


def probe_augment(ns, x, max_shift, seed, other_seed):
    """augment three times: with a seed, with the same seed after reseeding the global RNG (the
    batch must not change), and with another seed."""
    torch.manual_seed(1)
    first = ns["augment"](x.clone(), max_shift, torch.Generator().manual_seed(seed))
    torch.manual_seed(2)
    again = ns["augment"](x.clone(), max_shift, torch.Generator().manual_seed(seed))
    other = ns["augment"](x.clone(), max_shift, torch.Generator().manual_seed(other_seed))
    out = []
    for t in (first, again, other):
        out.append(t.detach().cpu() if isinstance(t, torch.Tensor) else f"a {type(t).__name__}")
    return out


def _transforms(x, m):
    """Every allowed output for every image: (2 * (2m+1)^2, N, C, H, W) and the (flip, dy, dx)
    of each, found by zero-padding and cropping."""
    h, w = x.shape[2:]
    keys, outs = [], []
    for flip in (0, 1):
        padded = F.pad(x.flip(3) if flip else x, (m, m, m, m))
        for dy in range(-m, m + 1):
            for dx in range(-m, m + 1):
                keys.append((flip, dy, dx))
                outs.append(padded[:, :, m - dy : m - dy + h, m - dx : m - dx + w])
    return keys, torch.stack(outs)


def _augmented(student, x, m, seed=0, other_seed=1):
    what = f"augment(x of shape {tuple(x.shape)}, {m}, generator)"
    got = student.run(probe_augment, x=x, max_shift=m, seed=seed, other_seed=other_seed)
    for t in got:
        assert isinstance(t, torch.Tensor), f"{what} returned {t}, not a tensor"
        assert tuple(t.shape) == tuple(x.shape), f"{what}: shape {tuple(t.shape)}"
    keys, outs = _transforms(x, m)
    match = (outs == got[0][None]).flatten(2).all(dim=2)  # (transforms, N)
    unmatched = (~match.any(dim=0)).nonzero().flatten().tolist()
    assert not unmatched, (
        f"{what}: {len(unmatched)} of {len(x)} outputs (image {unmatched[0]} first) are no flip "
        f"of their own input shifted by at most {m} pixels with zeros filled in"
    )
    return [keys[i] for i in match.float().argmax(dim=0).tolist()], got, what


@grade_cell(f"{N}_augment_check")
@points(1)
def test_augment_outputs_are_flips_and_shifts(student):
    """Each output is its own input, flipped or not, shifted by at most max_shift (zero fill)."""
    g = _gen(81)
    _augmented(student, torch.rand(40, 2, 10, 9, generator=g) + 0.1, 3)
    _augmented(student, torch.rand(16, 1, 7, 7, generator=g) + 0.1, 0)


@grade_cell(f"{N}_augment_check")
@points(1)
def test_augment_draws_per_image(student):
    """Over 900 copies of one image: about half flipped, each of the 9 shifts about a ninth."""
    image = torch.rand(1, 1, 8, 11, generator=_gen(82)) + 0.1
    found, _, what = _augmented(student, image.expand(900, 1, 8, 11).clone(), 1)
    flipped = sum(k[0] for k in found) / len(found)
    assert 0.43 <= flipped <= 0.57, f"{what}: {flipped:.1%} flipped, expected about 50%"
    counts = torch.zeros(3, 3)
    for _, dy, dx in found:
        counts[dy + 1, dx + 1] += 1
    share = counts / len(found)
    low, high = share.min().item(), share.max().item()
    assert 0.07 <= low and high <= 0.155, (
        f"{what}: the nine shifts occur between {low:.1%} and {high:.1%} of the time, expected "
        "about 11.1% each (drawn uniformly and independently for every image)"
    )


@grade_cell(f"{N}_augment_check")
@points(1)
def test_augment_uses_the_generator(student):
    """The same generator seed gives the same batch whatever the global RNG does; another seed
    gives another batch."""
    x = torch.rand(64, 1, 9, 9, generator=_gen(83)) + 0.1
    _, (first, again, other), what = _augmented(student, x, 2, seed=5, other_seed=6)
    assert torch.equal(first, again), (
        f"{what}: the same generator seed gave different batches after the global RNG was "
        "reseeded; draw every random number from `generator`"
    )
    assert not torch.equal(first, other), f"{what}: two different seeds gave the same batch"


# Exercise 3: ResidualBlock (3 points) ----------------------------------------------------


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


# Exercise 4: layer_grad_norms (2 points) -------------------------------------------------


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


# Exercise 5: softmax_jacobian (2 points) -------------------------------------------------

AUTOGRAD = {"backward", "autograd", "grad", "requires_grad", "requires_grad_", "enable_grad",
            "func", "vjp", "jacobian", "functional"}  # fmt: skip


def _jacobian(student, z):
    got = student.run(probe_call, name="softmax_jacobian", args=[z])
    want = torch.autograd.functional.jacobian(lambda t: torch.softmax(t, 0), z)
    what = f"softmax_jacobian(z of {len(z)} {str(z.dtype).replace('torch.', '')} logits)"
    close(got, want, what, "autograd's Jacobian of torch.softmax", atol=1e-6)


@grade_cell(f"{N}_softmax_jacobian_check")
@points(1)
def test_softmax_jacobian_matches_autograd(student):
    """diag(s) - s s^T for several sizes and dtypes, against autograd."""
    g = _gen(111)
    for k, dtype in [
        (3, torch.float32),
        (8, torch.float32),
        (4, torch.float64),
        (1, torch.float64),
    ]:
        _jacobian(student, torch.randn(k, generator=g, dtype=dtype) * 2)


@grade_cell(f"{N}_softmax_jacobian_check")
@points(1)
def test_softmax_jacobian_large_logits_without_autograd(student):
    """Logits of +-1000 (a naive exp overflows), and no autograd in the function."""
    _jacobian(student, torch.tensor([1000.0, 0.0, -1000.0], dtype=torch.float64))
    _jacobian(student, torch.tensor([500.0, 499.0, -20.0]))
    _avoids(student, "softmax_jacobian", AUTOGRAD, "the exercise asks for the Jacobian by hand")


# Exercise 6: spacing (2 points) ----------------------------------------------------------


def _spacing(student, values, dtype):
    v = values.to(dtype)
    got = student.run(probe_call, name="spacing", args=[v.double(), dtype])
    up = torch.where(v > 0, torch.full_like(v, float("inf")), torch.full_like(v, float("-inf")))
    want = (torch.nextafter(v, up) - v).abs().double()
    what = f"spacing({len(v)} values, {dtype})"
    close(got, want, what, f"torch.nextafter in {dtype}", atol=0.0)


@grade_cell(f"{N}_spacing_check")
@points(1)
def test_spacing_half_precision(student):
    """float16 and bfloat16: values from 1e-4 to 6e4, powers of two and negative values."""
    g = _gen(121)
    values = torch.cat([torch.exp(torch.empty(30).uniform_(-9, 11, generator=g)),
                        torch.tensor([1.0, 2.0, 0.5, 1024.0, 2.0**-13, 60000.0]),
                        -torch.tensor([3.0, 0.01, 300.0])]).double()  # fmt: skip
    for dtype in (torch.float16, torch.bfloat16):
        _spacing(student, values, dtype)


@grade_cell(f"{N}_spacing_check")
@points(1)
def test_spacing_single_precision_without_nextafter(student):
    """float32 from 1e-30 to 1e30; and the spacing is computed, not looked up with nextafter."""
    g = _gen(122)
    values = torch.cat([torch.exp(torch.empty(30).uniform_(-69, 69, generator=g)),
                        torch.tensor([1.0, 2.0**20, 2.0**-100, -7.5])]).double()  # fmt: skip
    _spacing(student, values, torch.float32)
    _avoids(student, "spacing", {"nextafter"},
            "the exercise asks for the spacing from eps and the exponent")  # fmt: skip
