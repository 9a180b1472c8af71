"""Hidden tests for T05b GANs, one section per exercise in the notebook's order:
optimal_discriminator, js_divergence, the GAN losses (discriminator_loss, generator_loss),
saturating_generator_loss and modes_covered.

References: formulas written out here for the discriminator, the JS divergence (a sum on a grid)
and the mode count, F.binary_cross_entropy_with_logits and F.logsigmoid in float64 for the losses,
and their derivatives (-sigmoid(a) / N for the saturating loss, -(1 - sigmoid(a)) / N for the
non-saturating one) for the gradients. Inputs differ from the notebook's.
"""

import functools
import math

import torch
import torch.nn.functional as F

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close


def probe_call(ns, name, args):
    return ns[name](*args)


def probe_loss_grad(ns, name, logits):
    logits = logits.clone().requires_grad_(True)
    loss = ns[name](logits)
    if not (isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.requires_grad):
        return {"loss": loss, "grad": None}
    loss.backward()
    return {"loss": loss.detach(), "grad": logits.grad}


# This module's default tolerance: 1e-5 + 1e-5 x |expected|.
_close = functools.partial(close, rtol=1e-5)


def _number(got, what):
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    assert isinstance(got, int | float) and not isinstance(got, bool), (
        f"{what} returned a {type(got).__name__}, not a number"
    )
    return float(got)


# Exercise 1: optimal_discriminator ------------------------------------------------------------


@grade_cell("t05b_gan_dstar_check")
@points(1)
def test_dstar_values(student):
    """p_data / (p_data + p_g) for positive densities, with broadcasting."""
    gen = torch.Generator().manual_seed(106)
    p, q = torch.rand(3, 4, generator=gen) + 0.01, torch.rand(4, generator=gen) + 0.01
    what = "optimal_discriminator(p_data (3, 4), p_g (4,))"
    got = student.run(probe_call, name="optimal_discriminator", args=[p, q])
    _close(got, p / (p + q), what, atol=1e-6)


@grade_cell("t05b_gan_dstar_check")
@points(1)
def test_dstar_zeros(student):
    """0 where only p_data is zero, 1 where only p_g is, 1/2 where both are (never nan)."""
    p = torch.tensor([0.0, 2.0, 0.0, 1e-30, 5.0])
    q = torch.tensor([4.0, 0.0, 0.0, 1e-30, 5.0])
    what = "optimal_discriminator([0, 2, 0, 1e-30, 5], [4, 0, 0, 1e-30, 5])"
    got = student.run(probe_call, name="optimal_discriminator", args=[p, q])
    _close(got, torch.tensor([0.0, 1.0, 0.5, 0.5, 0.5]), what, atol=1e-6)


# Exercise 2: js_divergence --------------------------------------------------------------------

GRID = torch.linspace(-12, 12, 6001, dtype=torch.float64)
DX = (GRID[1] - GRID[0]).item()


def _pdf(mu, sigma):
    return torch.exp(-0.5 * ((GRID - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def _ref_js(p, q):
    m = 0.5 * (p + q)

    def part(a):
        mask = a > 0
        return (a[mask] * torch.log(a[mask] / m[mask])).sum() * DX

    return (0.5 * part(p) + 0.5 * part(q)).item()


def _js(student, p, q, what):
    return _number(student.run(probe_call, name="js_divergence", args=[p, q, DX]), what)


@grade_cell("t05b_gan_js_check")
@points(1)
def test_js_gaussians(student):
    """Gaussians of several separations and widths against the reference sum."""
    for (m1, s1), (m2, s2) in [((0, 1), (1, 1)), ((-1, 0.5), (2, 2)), ((0, 1), (0, 3))]:
        what = f"js_divergence(N({m1}, {s1}^2), N({m2}, {s2}^2))"
        p, q = _pdf(m1, s1), _pdf(m2, s2)
        got = _js(student, p, q, what)
        _close(got, _ref_js(p, q), what, atol=1e-6, rtol=1e-5)


@grade_cell("t05b_gan_js_check")
@points(1)
def test_js_zero_densities(student):
    """Disjoint supports give log 2; densities that are zero on part of the grid give no nan."""
    a = ((GRID >= -5) & (GRID < -2)).double()
    b = ((GRID >= 0) & (GRID < 1)).double()
    a, b = a / (a.sum() * DX), b / (b.sum() * DX)
    what = "js_divergence of disjoint uniform densities"
    _close(_js(student, a, b, what), math.log(2), what, atol=1e-6)
    c = ((GRID >= -3) & (GRID < 0.5)).double()
    c = c / (c.sum() * DX)
    what = "js_divergence of overlapping uniform densities"
    _close(_js(student, a, c, what), _ref_js(a, c), what, atol=1e-6, rtol=1e-5)
    what = "js_divergence(uniform, N(0, 1))"
    _close(_js(student, b, _pdf(0, 1), what), _ref_js(b, _pdf(0, 1)), what, atol=1e-6, rtol=1e-5)


@grade_cell("t05b_gan_js_check")
@points(1)
def test_js_symmetric_and_zero_on_equal(student):
    """JS(p, q) = JS(q, p), and JS(p, p) = 0."""
    p, q = _pdf(-0.5, 0.7), _pdf(1.0, 1.3)
    pq = _js(student, p, q, "js_divergence(p, q)")
    qp = _js(student, q, p, "js_divergence(q, p)")
    _close(pq - qp, 0.0, "js_divergence(p, q) - js_divergence(q, p)", atol=1e-8)
    _close(_js(student, q, q, "js_divergence(q, q)"), 0.0, "js_divergence(q, q)", atol=1e-8)


# Exercise 3: the GAN losses -------------------------------------------------------------------


def _bce(logits, label):
    return F.binary_cross_entropy_with_logits(
        logits.double(), torch.full_like(logits.double(), label)
    )


@grade_cell("t05b_gan_losses_check")
@points(1)
def test_gan_loss_values(student):
    """Both losses against binary cross-entropy with logits, for (N, 1) and (N,) logits and for
    logits of size 100 (stable, finite)."""
    gen = torch.Generator().manual_seed(107)
    cases = [(torch.randn(10, 1, generator=gen) * 2, torch.randn(10, 1, generator=gen) * 2),
             (torch.randn(7, generator=gen), torch.randn(5, generator=gen) - 1),
             (torch.tensor([100.0, -100.0, 3.0]), torch.tensor([-100.0, 100.0, 0.0]))]  # fmt: skip
    for real, fake in cases:
        shapes = f"real {tuple(real.shape)}, fake {tuple(fake.shape)}"
        got = _number(student.run(probe_call, name="discriminator_loss", args=[real, fake]),
                      "discriminator_loss")  # fmt: skip
        _close(got, (_bce(real, 1.0) + _bce(fake, 0.0)).item(), f"discriminator_loss({shapes})",
               rtol=1e-4)  # fmt: skip
        got = _number(student.run(probe_call, name="generator_loss", args=[fake]), "generator_loss")
        _close(got, _bce(fake, 1.0).item(), f"generator_loss(fake {tuple(fake.shape)})", rtol=1e-4)


@grade_cell("t05b_gan_losses_check")
@points(1)
def test_generator_loss_is_non_saturating(student):
    """When the discriminator confidently rejects the fakes (logits -20), the gradient of the
    generator loss is about -1/N per logit, not about 0 as for log(1 - D)."""
    logits = torch.full((8,), -20.0)
    got = student.run(probe_loss_grad, name="generator_loss", logits=logits)
    assert got["grad"] is not None, "generator_loss: no gradient reached the logits"
    _close(
        got["grad"], torch.full((8,), -1 / 8), "generator_loss at logits -20: gradient", atol=1e-4
    )


# Exercise 4: the saturating generator loss ----------------------------------------------------


@grade_cell("t05b_gan_saturating_check")
@points(1)
def test_saturating_loss_values(student):
    """The mean of log(1 - sigmoid(a)) for (N, 1) and (N,) logits, and for logits of 40 and 100,
    where log(1 - sigmoid(a)) computed as written is -inf in float32."""
    gen = torch.Generator().manual_seed(109)
    cases = [(torch.randn(10, 1, generator=gen) * 2, "random logits of shape (10, 1)"),
             (torch.randn(7, generator=gen) - 1, "random logits of shape (7,)"),
             (torch.tensor([100.0, -100.0, 3.0, 40.0]), "logits [100, -100, 3, 40]")]  # fmt: skip
    for fake, label in cases:
        got = student.run(probe_call, name="saturating_generator_loss", args=[fake])
        want = F.logsigmoid(-fake.double()).mean().item()
        what = f"saturating_generator_loss on {label}"
        _close(got, want, what, "mean log(1 - sigmoid(a)) in float64", rtol=1e-4)


@grade_cell("t05b_gan_saturating_check")
@points(1)
def test_saturating_loss_gradient(student):
    """d loss / d a_i = -sigmoid(a_i) / N: about -2.6e-10 per logit at logits -20 (rejected
    fakes: the gradient vanishes), and of order 1 / N where the fakes pass."""
    for logits in (torch.full((8,), -20.0), torch.tensor([-2.0, 0.0, 1.5, 4.0])):
        got = student.run(probe_loss_grad, name="saturating_generator_loss", logits=logits)
        assert got["grad"] is not None, "saturating_generator_loss: no gradient reached the logits"
        want = -torch.sigmoid(logits.double()) / len(logits)
        what = f"saturating_generator_loss at logits {logits.tolist()}: gradient"
        _close(got["grad"], want, what, "-sigmoid(logits) / N", atol=1e-10, rtol=1e-4)


# Exercise 5: modes_covered --------------------------------------------------------------------


def _ref_modes(samples, centres, max_dist, min_count):
    d = torch.cdist(samples.double(), centres.double())
    nearest, which = d.min(dim=1)
    good = nearest <= max_dist
    counts = torch.bincount(which[good], minlength=len(centres))
    return int((counts >= min_count).sum()), good.double().mean().item()


def _modes(student, samples, centres, max_dist, min_count):
    got = student.run(
        probe_call, name="modes_covered", args=[samples, centres, max_dist, min_count]
    )
    what = f"modes_covered(max_dist={max_dist}, min_count={min_count}) on {len(samples)} samples"
    assert isinstance(got, tuple | list) and len(got) == 2, (
        f"{what} returned {type(got).__name__}, not a pair (covered, good_fraction)"
    )
    covered = got[0].item() if isinstance(got[0], torch.Tensor) and got[0].numel() == 1 else got[0]
    assert isinstance(covered, int) and not isinstance(covered, bool), (
        f"{what}: the number of covered modes is a {type(covered).__name__}, not an int"
    )
    return covered, _number(got[1], what), what


@grade_cell("t05b_gan_modes_check")
@points(1)
def test_modes_on_a_ring(student):
    """Samples on 3 of 8 ring modes plus noise: modes covered and the good fraction."""
    gen = torch.Generator().manual_seed(108)
    angles = torch.arange(8) * 2 * math.pi / 8
    centres = 2 * torch.stack([angles.cos(), angles.sin()], dim=1)
    on_modes = centres[torch.tensor([0, 0, 0, 3, 3, 6] * 20)] + 0.05 * torch.randn(
        120, 2, generator=gen
    )
    samples = torch.cat([on_modes, torch.randn(80, 2, generator=gen) * 3])
    for min_count in (1, 25):
        covered, good, what = _modes(student, samples, centres, 0.3, min_count)
        want = _ref_modes(samples, centres, 0.3, min_count)
        assert covered == want[0], f"{what}: {covered} modes covered, expected {want[0]}"
        _close(good, want[1], f"{what}: good fraction", atol=1e-6)


@grade_cell("t05b_gan_modes_check")
@points(1)
def test_modes_threshold_and_nearest_centre(student):
    """A sample counts only for its nearest centre, and only when within max_dist (inclusive
    bound not relied on)."""
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0]])
    samples = torch.tensor([[0.4, 0.0], [0.45, 0.0], [0.6, 0.0], [0.9, 0.0], [5.0, 5.0],
                            [10.0, 10.2], [2.0, 0.0]])  # fmt: skip
    for max_dist, min_count in [(0.5, 2), (0.7, 2), (0.3, 1), (0.5, 3)]:
        covered, good, what = _modes(student, samples, centres, max_dist, min_count)
        want = _ref_modes(samples, centres, max_dist, min_count)
        assert covered == want[0], f"{what}: {covered} modes covered, expected {want[0]}"
        _close(good, want[1], f"{what}: good fraction", atol=1e-6)
