"""Hidden tests for T05 VAEs and GANs: gaussian_kl, vae_kl, mc_kl, reparameterize,
optimal_discriminator, js_divergence, the GAN losses and modes_covered.

References: torch.distributions for the KLs, the closed form for the Monte-Carlo estimate (with
the true standard error of the sampled log-ratio, computed here from a large sample), autograd for
the gradients, F.binary_cross_entropy_with_logits for the losses, and formulas written out here
for the discriminator, the JS divergence and the mode count. Inputs differ from the notebook's.
The KLs and the log-density are to be written by hand, so those tests first check that the
student's functions do not reach torch.distributions (by name in the source, or by alias).
"""

import ast
import functools
import math

import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close


def probe_call(ns, name, args):
    return ns[name](*args)


def probe_distribution_refs(ns, name):
    """Global names that `name`'s code (nested functions included) resolves to torch.distributions
    objects: catches aliases such as `k = kl_divergence` that the source alone would not show."""
    import types

    import torch.distributions as D

    fn = ns[name]
    code = getattr(fn, "__code__", None)
    found = set()

    def banned(obj):
        if obj is D or obj is D.kl or obj is D.kl_divergence:
            return True
        return isinstance(obj, type) and issubclass(obj, D.Distribution)

    def visit(c):
        for n in c.co_names:
            if banned(getattr(fn, "__globals__", {}).get(n)):
                found.add(n)
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                visit(const)

    if code is not None:
        visit(code)
    return sorted(found)


def probe_kl_grad(ns, mu1, logvar1, mu2, logvar2, grad_out):
    mu1, logvar1 = mu1.clone().requires_grad_(True), logvar1.clone().requires_grad_(True)
    out = ns["gaussian_kl"](mu1, logvar1, mu2, logvar2)
    if not (isinstance(out, torch.Tensor) and out.shape == grad_out.shape and out.requires_grad):
        return {"out": out, "dmu": None, "dlogvar": None}
    out.backward(grad_out)
    return {"out": out, "dmu": mu1.grad, "dlogvar": logvar1.grad}


def probe_mc(ns, params, n, seed):
    return ns["mc_kl"](*params, n, torch.Generator().manual_seed(seed))


def probe_reparam(ns, mu, logvar, eps, grad_out):
    mu, logvar = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = ns["reparameterize"](mu, logvar, eps)
    if not (isinstance(z, torch.Tensor) and z.shape == grad_out.shape and z.requires_grad):
        return {"z": z, "dmu": None, "dlogvar": None}
    z.backward(grad_out)
    return {"z": z, "dmu": mu.grad, "dlogvar": logvar.grad}


def probe_gen_loss_grad(ns, logits):
    logits = logits.clone().requires_grad_(True)
    loss = ns["generator_loss"](logits)
    if not (isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.requires_grad):
        return {"loss": loss, "grad": None}
    loss.backward()
    return {"loss": loss, "grad": logits.grad}


def _tensor(got, shape, what):
    assert isinstance(got, torch.Tensor), f"{what} returned a {type(got).__name__}, not a tensor"
    assert tuple(got.shape) == tuple(shape), (
        f"{what}: shape {tuple(got.shape)}, expected {tuple(shape)}"
    )
    return got.double()


# This module's default tolerance: 1e-5 + 1e-5 x |expected|.
_close = functools.partial(close, rtol=1e-5)


def _number(got, what):
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    assert isinstance(got, int | float) and not isinstance(got, bool), (
        f"{what} returned a {type(got).__name__}, not a number"
    )
    return float(got)


DISTRIBUTIONS = {"distributions", "kl_divergence", "Normal", "Independent", "MultivariateNormal",
                 "log_prob", "LowRankMultivariateNormal"}  # fmt: skip


def _no_distributions(student, name):
    """The closed forms and the log-density are the exercise: torch.distributions is the check."""
    found = {
        node.attr if isinstance(node, ast.Attribute) else node.id
        for node in ast.walk(ast.parse(student.source(name)))
        if (isinstance(node, ast.Attribute) and node.attr in DISTRIBUTIONS)
        or (isinstance(node, ast.Name) and node.id in DISTRIBUTIONS)
    }
    found |= set(student.run(probe_distribution_refs, name=name))
    assert not found, (
        f"{name} uses torch.distributions ({', '.join(sorted(found))}): the exercise is to write "
        "the formula yourself; torch.distributions is what it is checked against"
    )


def _ref_kl(mu1, lv1, mu2, lv2):
    return kl_divergence(Normal(mu1, (0.5 * lv1).exp()), Normal(mu2, (0.5 * lv2).exp()))


# Exercise 1: gaussian_kl ----------------------------------------------------------------------


@grade_cell("t05_vae_gan_kl_check")
@points(1)
def test_kl_values_and_broadcasting(student):
    """Values against torch.distributions, for equal shapes and for a scalar second Gaussian."""
    _no_distributions(student, "gaussian_kl")
    gen = torch.Generator().manual_seed(101)
    mu1, lv1, mu2, lv2 = (torch.randn(3, 5, generator=gen) * 1.5 for _ in range(4))
    what = "gaussian_kl on (3, 5) parameters"
    got = student.run(probe_call, name="gaussian_kl", args=[mu1, lv1, mu2, lv2])
    _close(_tensor(got, (3, 5), what), _ref_kl(mu1, lv1, mu2, lv2), what)
    mu2, lv2 = torch.tensor(0.5), torch.tensor(-1.0)
    what = "gaussian_kl(mu1 (3, 5), logvar1 (3, 5), mu2 = 0.5, logvar2 = -1)"
    got = student.run(probe_call, name="gaussian_kl", args=[mu1, lv1, mu2, lv2])
    _close(_tensor(got, (3, 5), what), _ref_kl(mu1, lv1, mu2, lv2), what)


@grade_cell("t05_vae_gan_kl_check")
@points(1)
def test_kl_both_directions(student):
    """KL(q || p) and KL(p || q) differ; both match, including very small and large variances."""
    _no_distributions(student, "gaussian_kl")
    mu_q, lv_q = torch.tensor([0.0, 1.0, -2.0, 0.3]), torch.tensor([-4.0, 0.0, 2.0, 3.0])
    mu_p, lv_p = torch.tensor([1.0, 0.0, 0.5, -0.3]), torch.tensor([0.0, 1.5, -1.0, -3.0])
    for args, label in [([mu_q, lv_q, mu_p, lv_p], "KL(q || p)"),
                        ([mu_p, lv_p, mu_q, lv_q], "KL(p || q)")]:  # fmt: skip
        what = f"gaussian_kl for {label}"
        got = student.run(probe_call, name="gaussian_kl", args=args)
        _close(_tensor(got, (4,), what), _ref_kl(*args), what, rtol=1e-4)


@grade_cell("t05_vae_gan_kl_check")
@points(1)
def test_kl_gradients(student):
    """Gradients with respect to mu1 and logvar1 match autograd through torch.distributions."""
    _no_distributions(student, "gaussian_kl")
    gen = torch.Generator().manual_seed(102)
    mu1, lv1, mu2, lv2 = (torch.randn(6, generator=gen) for _ in range(4))
    grad_out = torch.randn(6, generator=gen)
    got = student.run(probe_kl_grad, mu1=mu1, logvar1=lv1, mu2=mu2, logvar2=lv2,
                      grad_out=grad_out)  # fmt: skip
    assert got["dmu"] is not None, "gaussian_kl: no gradient reached mu1 (or logvar1)"
    m, lv = mu1.clone().requires_grad_(True), lv1.clone().requires_grad_(True)
    _ref_kl(m, lv, mu2, lv2).backward(grad_out)
    _close(_tensor(got["dmu"], (6,), "the gradient with respect to mu1"), m.grad,
           "gaussian_kl: the gradient with respect to mu1")  # fmt: skip
    _close(_tensor(got["dlogvar"], (6,), "the gradient with respect to logvar1"), lv.grad,
           "gaussian_kl: the gradient with respect to logvar1")  # fmt: skip


# Exercise 2: vae_kl ---------------------------------------------------------------------------


@grade_cell("t05_vae_gan_vae_kl_check")
@points(1)
def test_vae_kl(student):
    """One KL per row, against Independent Normals and N(0, I); and a value by hand."""
    _no_distributions(student, "vae_kl")
    gen = torch.Generator().manual_seed(103)
    for n, d in [(7, 3), (2, 10)]:
        mu, lv = torch.randn(n, d, generator=gen) * 2, torch.randn(n, d, generator=gen)
        prior = Independent(Normal(torch.zeros(n, d), torch.ones(n, d)), 1)
        want = kl_divergence(Independent(Normal(mu, (0.5 * lv).exp()), 1), prior)
        what = f"vae_kl on ({n}, {d}) outputs"
        _close(
            _tensor(student.run(probe_call, name="vae_kl", args=[mu, lv]), (n,), what), want, what
        )
    # mu = (1, 2), logvar = 0: KL = (1 + 4) / 2
    what = "vae_kl([[1, 2]], [[0, 0]])"
    got = student.run(
        probe_call, name="vae_kl", args=[torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2)]
    )
    _close(_tensor(got, (1,), what), torch.tensor([2.5]), what)


# Exercise 3: mc_kl ----------------------------------------------------------------------------

MC_CASES = [((0.0, 0.0, 1.0, 0.0), 20_000), ((-1.0, 1.0, 0.5, -0.5), 50_000),
            ((2.0, -2.0, 0.0, 1.0), 10_000)]  # fmt: skip


def _true_se(params, n):
    """The standard error of the n-sample mean of log q(z) - log p(z), from a large sample."""
    mu1, lv1, mu2, lv2 = params
    gen = torch.Generator().manual_seed(9)
    z = mu1 + math.exp(0.5 * lv1) * torch.randn(2_000_000, dtype=torch.float64, generator=gen)
    t = Normal(mu1, math.exp(0.5 * lv1)).log_prob(z) - Normal(mu2, math.exp(0.5 * lv2)).log_prob(z)
    return t.std().item() / math.sqrt(n)


def _mc(student, params, n, seed):
    got = student.run(probe_mc, params=list(params), n=n, seed=seed)
    what = f"mc_kl{params + (n,)}"
    assert isinstance(got, tuple | list) and len(got) == 2, (
        f"{what} returned {type(got).__name__}, not a pair (estimate, standard_error)"
    )
    return _number(got[0], f"{what}[0]"), _number(got[1], f"{what}[1]"), what


@grade_cell("t05_vae_gan_mc_check")
@points(1)
def test_mc_estimate_agrees_with_closed_form(student):
    """The estimate lies within 5 true standard errors of the closed-form KL."""
    _no_distributions(student, "mc_kl")
    for i, (params, n) in enumerate(MC_CASES):
        est, _, what = _mc(student, params, n, seed=200 + i)
        exact = _ref_kl(*(torch.tensor(v, dtype=torch.float64) for v in params)).item()
        se = _true_se(params, n)
        assert abs(est - exact) <= 5 * se, (
            f"{what}: estimate {est:.5f}, the closed form is {exact:.5f} "
            f"(allowed: 5 standard errors, {5 * se:.2g})"
        )


@grade_cell("t05_vae_gan_mc_check")
@points(1)
def test_mc_standard_error(student):
    """The standard error is within 10% of the true one, s / sqrt(n)."""
    _no_distributions(student, "mc_kl")
    for i, (params, n) in enumerate(MC_CASES):
        _, se_got, what = _mc(student, params, n, seed=300 + i)
        se = _true_se(params, n)
        assert abs(se_got - se) <= 0.1 * se, (
            f"{what}: standard error {se_got:.4g}, expected {se:.4g} (within 10%)"
        )


# Exercise 4: reparameterize -------------------------------------------------------------------


@grade_cell("t05_vae_gan_reparam_check")
@points(1)
def test_reparam_values(student):
    """mu + exp(logvar / 2) * eps, with parameters (N, d) and noise (S, N, d) broadcasting."""
    gen = torch.Generator().manual_seed(104)
    mu, lv = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    eps = torch.randn(5, 4, 3, generator=gen)
    what = "reparameterize(mu (4, 3), logvar (4, 3), eps (5, 4, 3))"
    got = student.run(probe_call, name="reparameterize", args=[mu, lv, eps])
    _close(_tensor(got, (5, 4, 3), what), mu + (0.5 * lv).exp() * eps, what)


@grade_cell("t05_vae_gan_reparam_check")
@points(1)
def test_reparam_gradients(student):
    """Gradients with respect to mu and logvar are exact (the noise is fixed)."""
    gen = torch.Generator().manual_seed(105)
    mu, lv, eps = (torch.randn(6, generator=gen) for _ in range(3))
    grad_out = torch.randn(6, generator=gen)
    got = student.run(probe_reparam, mu=mu, logvar=lv, eps=eps, grad_out=grad_out)
    assert got["dmu"] is not None, "reparameterize: no gradient reached mu and logvar"
    _close(_tensor(got["dmu"], (6,), "d z / d mu"), grad_out, "reparameterize: gradient for mu")
    want = grad_out * 0.5 * (0.5 * lv).exp() * eps
    _close(_tensor(got["dlogvar"], (6,), "d z / d logvar"), want,
           "reparameterize: gradient for logvar")  # fmt: skip


# Exercise 5: optimal_discriminator ------------------------------------------------------------


@grade_cell("t05_vae_gan_dstar_check")
@points(1)
def test_dstar_values(student):
    """p_data / (p_data + p_g) for positive densities, with broadcasting."""
    gen = torch.Generator().manual_seed(106)
    p, q = torch.rand(3, 4, generator=gen) + 0.01, torch.rand(4, generator=gen) + 0.01
    what = "optimal_discriminator(p_data (3, 4), p_g (4,))"
    got = student.run(probe_call, name="optimal_discriminator", args=[p, q])
    _close(_tensor(got, (3, 4), what), p / (p + q), what, atol=1e-6)


@grade_cell("t05_vae_gan_dstar_check")
@points(1)
def test_dstar_zeros(student):
    """0 where only p_data is zero, 1 where only p_g is, 1/2 where both are (never nan)."""
    p = torch.tensor([0.0, 2.0, 0.0, 1e-30, 5.0])
    q = torch.tensor([4.0, 0.0, 0.0, 1e-30, 5.0])
    what = "optimal_discriminator([0, 2, 0, 1e-30, 5], [4, 0, 0, 1e-30, 5])"
    got = student.run(probe_call, name="optimal_discriminator", args=[p, q])
    _close(_tensor(got, (5,), what), torch.tensor([0.0, 1.0, 0.5, 0.5, 0.5]), what, atol=1e-6)


# Exercise 6: js_divergence --------------------------------------------------------------------

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


@grade_cell("t05_vae_gan_js_check")
@points(1)
def test_js_gaussians(student):
    """Gaussians of several separations and widths against the reference sum."""
    for (m1, s1), (m2, s2) in [((0, 1), (1, 1)), ((-1, 0.5), (2, 2)), ((0, 1), (0, 3))]:
        what = f"js_divergence(N({m1}, {s1}^2), N({m2}, {s2}^2))"
        p, q = _pdf(m1, s1), _pdf(m2, s2)
        got = _js(student, p, q, what)
        _close(got, _ref_js(p, q), what, atol=1e-6, rtol=1e-5)


@grade_cell("t05_vae_gan_js_check")
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


@grade_cell("t05_vae_gan_js_check")
@points(1)
def test_js_symmetric_and_zero_on_equal(student):
    """JS(p, q) = JS(q, p), and JS(p, p) = 0."""
    p, q = _pdf(-0.5, 0.7), _pdf(1.0, 1.3)
    pq = _js(student, p, q, "js_divergence(p, q)")
    qp = _js(student, q, p, "js_divergence(q, p)")
    _close(pq - qp, 0.0, "js_divergence(p, q) - js_divergence(q, p)", atol=1e-8)
    _close(_js(student, q, q, "js_divergence(q, q)"), 0.0, "js_divergence(q, q)", atol=1e-8)


# Exercise 7: the GAN losses -------------------------------------------------------------------


def _bce(logits, label):
    return F.binary_cross_entropy_with_logits(
        logits.double(), torch.full_like(logits.double(), label)
    )


@grade_cell("t05_vae_gan_losses_check")
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


@grade_cell("t05_vae_gan_losses_check")
@points(1)
def test_generator_loss_is_non_saturating(student):
    """When the discriminator confidently rejects the fakes (logits -20), the gradient of the
    generator loss is about -1/N per logit, not about 0 as for log(1 - D)."""
    logits = torch.full((8,), -20.0)
    got = student.run(probe_gen_loss_grad, logits=logits)
    assert got["grad"] is not None, "generator_loss: no gradient reached the logits"
    grad = _tensor(got["grad"], (8,), "the gradient of generator_loss")
    _close(grad, torch.full((8,), -1 / 8), "generator_loss at logits -20: gradient", atol=1e-4)


# Exercise 8: modes_covered --------------------------------------------------------------------


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


@grade_cell("t05_vae_gan_modes_check")
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


@grade_cell("t05_vae_gan_modes_check")
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
