"""Hidden tests for T05 VAEs, one section per exercise in the notebook's order:
log_marginal_grid, linear_gaussian_elbo, gaussian_kl, vae_kl, mc_kl, gaussian_kl_full,
reparameterize and negative_elbo.

References: exact marginals of linear-Gaussian models for the grid and the ELBO (whose gap is the
KL to the posterior Bayes' rule gives in closed form), torch.distributions (MultivariateNormal
too) for the KLs and the VAE loss, the closed form for the Monte-Carlo estimate (with
the true standard error of the sampled log-ratio, computed here from a large sample), autograd for
the gradients and F.binary_cross_entropy_with_logits for the VAE loss. Inputs differ from the
notebook's.
The KLs and the log-density are to be written by hand, so those tests first check that the
student's functions do not reach torch.distributions (by name in the source, or by alias).
"""

import ast
import functools
import math

import torch
import torch.nn.functional as F
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

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


def _tensor(got, shape, what):
    assert isinstance(got, torch.Tensor), f"{what} returned a {type(got).__name__}, not a tensor"
    assert tuple(got.shape) == tuple(shape), (
        f"{what}: shape {tuple(got.shape)}, expected {tuple(shape)}"
    )
    return got.double()


# This module's default tolerance: 1e-5 + 1e-5 x |expected|.
_close = functools.partial(close, rtol=1e-5)


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


# Exercise 1: log_marginal_grid ----------------------------------------------------------------


def _grid_case(w, b, s, x_values, lo=-10.0, hi=10.0, points=2001):
    z = torch.linspace(lo, hi, points, dtype=torch.float64)
    log_lik = Normal(w * z[:, None] + b, s).log_prob(x_values[None, :])
    return z, log_lik, Normal(0.0, 1.0).log_prob(z), (z[1] - z[0]).item()


@grade_cell("t05_vae_grid_check")
@points(1)
def test_grid_against_exact_marginals(student):
    """1-D: z ~ N(0, 1), x | z ~ N(-1.5 z + 0.5, 0.8^2), so x ~ N(0.5, 2.25 + 0.64); 2-D: two
    independent such latents on a product grid (cell volume = dz^2)."""
    x_values = torch.tensor([-4.0, -1.0, 0.5, 2.0, 5.0], dtype=torch.float64)
    z, log_lik, log_prior, dz = _grid_case(-1.5, 0.5, 0.8, x_values)
    got = student.run(probe_call, name="log_marginal_grid", args=[log_lik, log_prior, dz])
    want = Normal(0.5, math.sqrt(2.25 + 0.64)).log_prob(x_values)
    _close(
        _tensor(got, (5,), "log_marginal_grid (1-D)"),
        want,
        "log_marginal_grid on a 1-D grid",
        atol=1e-4,
    )
    # 2-D: x = (x1, x2) with x_i | z_i ~ N(z_i, 0.5^2): log p(x) = sum of two N(0, 1.25) terms
    axis = torch.linspace(-7, 7, 281, dtype=torch.float64)
    zz = torch.cartesian_prod(axis, axis)
    xs = torch.tensor([[0.3, -1.2], [2.0, 1.0], [-2.5, 0.0]], dtype=torch.float64)
    log_lik2 = Normal(zz[:, None, :], 0.5).log_prob(xs[None, :, :]).sum(-1)
    log_prior2 = Normal(0.0, 1.0).log_prob(zz).sum(-1)
    volume = ((axis[1] - axis[0]) ** 2).item()
    got = student.run(probe_call, name="log_marginal_grid", args=[log_lik2, log_prior2, volume])
    want = Normal(0.0, math.sqrt(1.25)).log_prob(xs).sum(-1)
    _close(
        _tensor(got, (3,), "log_marginal_grid (2-D)"),
        want,
        "log_marginal_grid on a 2-D grid",
        atol=1e-4,
    )


@grade_cell("t05_vae_grid_check")
@points(1)
def test_grid_does_not_underflow(student):
    """float32 log-likelihoods around -5,000 nats (an image's, times twenty): the result is the
    exact one lowered by 5,000, finite, not -inf."""
    x_values = torch.tensor([-1.0, 0.0, 3.0], dtype=torch.float64)
    z, log_lik, log_prior, dz = _grid_case(1.0, 0.0, 0.5, x_values, points=1001)
    got = student.run(
        probe_call, name="log_marginal_grid", args=[(log_lik - 5000).float(), log_prior.float(), dz]
    )
    want = Normal(0.0, math.sqrt(1.25)).log_prob(x_values) - 5000
    _close(
        _tensor(got, (3,), "log_marginal_grid"),
        want,
        "log_marginal_grid with log-likelihoods near -5000 (float32)",
        atol=2e-2,
        rtol=0,
    )


# Exercise 2: linear_gaussian_elbo -------------------------------------------------------------


def _posterior(x, w, b, s2):
    return w * (x - b) / (s2 + w**2), s2 / (s2 + w**2)


@grade_cell("t05_vae_elbo_check")
@points(1)
def test_elbo_equals_evidence_at_the_posterior(student):
    """At q = p(z | x) the ELBO is log p(x) = log N(x; b, w^2 + s^2), for two models."""
    _no_distributions(student, "linear_gaussian_elbo")
    x = torch.tensor([-2.0, -0.3, 0.0, 1.7, 4.2], dtype=torch.float64)
    for w, b, s2 in [(-0.7, 0.4, 0.09), (3.0, -1.0, 1.5)]:
        mean, var = _posterior(x, w, b, s2)
        got = student.run(
            probe_call,
            name="linear_gaussian_elbo",
            args=[x, w, b, s2, mean, torch.full_like(x, math.log(var))],
        )
        want = Normal(b, math.sqrt(w**2 + s2)).log_prob(x)
        what = f"linear_gaussian_elbo at the exact posterior (w={w}, b={b}, s^2={s2})"
        _close(_tensor(got, (5,), what), want, what)


@grade_cell("t05_vae_elbo_check")
@points(1)
def test_elbo_gap_is_the_kl_to_the_posterior(student):
    """For 4 x 6 other Gaussians q (broadcast against 6 observations): log p(x) - ELBO =
    KL(q || p(z | x))."""
    _no_distributions(student, "linear_gaussian_elbo")
    gen = torch.Generator().manual_seed(110)
    w, b, s2 = 1.3, 0.2, 0.5
    x = torch.randn(6, generator=gen, dtype=torch.float64) * 2
    q_mu = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    q_logvar = torch.randn(4, 1, generator=gen, dtype=torch.float64)
    got = student.run(probe_call, name="linear_gaussian_elbo", args=[x, w, b, s2, q_mu, q_logvar])
    mean, var = _posterior(x, w, b, s2)
    kl = kl_divergence(Normal(q_mu, (0.5 * q_logvar).exp()), Normal(mean, math.sqrt(var)))
    want = Normal(b, math.sqrt(w**2 + s2)).log_prob(x) - kl
    what = "linear_gaussian_elbo(x (6,), q_mu (4, 6), q_logvar (4, 1))"
    _close(_tensor(got, (4, 6), what), want, what)


# Exercise 3: gaussian_kl ----------------------------------------------------------------------


@grade_cell("t05_vae_kl_check")
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


@grade_cell("t05_vae_kl_check")
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


@grade_cell("t05_vae_kl_check")
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


# Exercise 4: vae_kl ---------------------------------------------------------------------------


@grade_cell("t05_vae_vae_kl_check")
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


# Exercise 5: mc_kl ----------------------------------------------------------------------------

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
    return got[0], got[1], what


@grade_cell("t05_vae_mc_check")
@points(1)
def test_mc_estimate_agrees_with_closed_form(student):
    """The estimate lies within 5 true standard errors of the closed-form KL."""
    _no_distributions(student, "mc_kl")
    for i, (params, n) in enumerate(MC_CASES):
        est, _, what = _mc(student, params, n, seed=200 + i)
        exact = _ref_kl(*(torch.tensor(v, dtype=torch.float64) for v in params)).item()
        what = f"{what}: the estimate (allowed: 5 standard errors)"
        close(est, exact, what, "the closed form", atol=5 * _true_se(params, n))


@grade_cell("t05_vae_mc_check")
@points(1)
def test_mc_standard_error(student):
    """The standard error is within 10% of the true one, s / sqrt(n)."""
    _no_distributions(student, "mc_kl")
    for i, (params, n) in enumerate(MC_CASES):
        _, se_got, what = _mc(student, params, n, seed=300 + i)
        se = _true_se(params, n)
        close(se_got, se, f"{what}: the standard error", "s / sqrt(n)", atol=0, rtol=0.1)


# Exercise 6: gaussian_kl_full -----------------------------------------------------------------


def _spd(gen, *shape, low=0.3):
    a = torch.randn(*shape, generator=gen, dtype=torch.float64)
    return a @ a.transpose(-2, -1) + low * torch.eye(shape[-1], dtype=torch.float64)


def _ref_kl_full(m1, c1, m2, c2):
    return kl_divergence(MultivariateNormal(m1, c1), MultivariateNormal(m2, c2))


@grade_cell("t05_vae_kl_full_check")
@points(1)
def test_kl_full_values(student):
    """A batch of 5 pairs in 4 dimensions, both directions, against MultivariateNormal."""
    _no_distributions(student, "gaussian_kl_full")
    gen = torch.Generator().manual_seed(111)
    m1, m2 = (
        torch.randn(5, 4, generator=gen, dtype=torch.float64),
        torch.randn(5, 4, generator=gen, dtype=torch.float64),
    )
    c1, c2 = _spd(gen, 5, 4, 4), _spd(gen, 5, 4, 4)
    for args, label in [((m1, c1, m2, c2), "KL(q || p)"), ((m2, c2, m1, c1), "KL(p || q)")]:
        what = f"gaussian_kl_full, 5 pairs in 4 dimensions, {label}"
        got = student.run(probe_call, name="gaussian_kl_full", args=list(args))
        _close(_tensor(got, (5,), what), _ref_kl_full(*args), what)


@grade_cell("t05_vae_kl_full_check")
@points(1)
def test_kl_full_broadcasting_and_diagonal(student):
    """Means (3, 5) against one shared (5,) mean and (5, 5) covariance; and diagonal
    covariances, whose KL is the sum of the 1-D ones."""
    _no_distributions(student, "gaussian_kl_full")
    gen = torch.Generator().manual_seed(112)
    m1, c1 = torch.randn(3, 5, generator=gen, dtype=torch.float64), _spd(gen, 3, 5, 5)
    m2, c2 = torch.randn(5, generator=gen, dtype=torch.float64), _spd(gen, 5, 5)
    what = "gaussian_kl_full(mu1 (3, 5), cov1 (3, 5, 5), mu2 (5,), cov2 (5, 5))"
    got = student.run(probe_call, name="gaussian_kl_full", args=[m1, c1, m2, c2])
    _close(
        _tensor(got, (3,), what), _ref_kl_full(m1, c1, m2.expand(3, 5), c2.expand(3, 5, 5)), what
    )
    v1, v2 = (
        torch.rand(2, 6, generator=gen, dtype=torch.float64) + 0.1,
        torch.rand(2, 6, generator=gen, dtype=torch.float64) + 0.1,
    )
    n1, n2 = (
        torch.randn(2, 6, generator=gen, dtype=torch.float64),
        torch.randn(2, 6, generator=gen, dtype=torch.float64),
    )
    what = "gaussian_kl_full with diagonal covariances"
    got = student.run(
        probe_call,
        name="gaussian_kl_full",
        args=[n1, torch.diag_embed(v1), n2, torch.diag_embed(v2)],
    )
    want = kl_divergence(Normal(n1, v1.sqrt()), Normal(n2, v2.sqrt())).sum(-1)
    _close(_tensor(got, (2,), what), want, what)


@grade_cell("t05_vae_kl_full_check")
@points(1)
def test_kl_full_large_determinants(student):
    """40 dimensions in float32, variances from 10 to 1000: each determinant is about 1e80, past
    float32's largest number (3e38), so det() overflows where slogdet (or a Cholesky factor)
    does not. The KL itself is a moderate number."""
    _no_distributions(student, "gaussian_kl_full")
    gen = torch.Generator().manual_seed(113)
    basis, _ = torch.linalg.qr(torch.randn(40, 40, generator=gen, dtype=torch.float64))
    variances = torch.logspace(1, 3, 40, dtype=torch.float64)
    factors = 0.8 + 0.45 * torch.rand(40, generator=gen, dtype=torch.float64)
    c1 = basis @ torch.diag(variances) @ basis.T
    c2 = basis @ torch.diag(variances * factors) @ basis.T
    c1, c2 = (c1 + c1.T) / 2, (c2 + c2.T) / 2
    m1 = torch.randn(40, generator=gen, dtype=torch.float64)
    m2 = m1 + torch.randn(40, generator=gen, dtype=torch.float64)
    args = [t.float() for t in (m1, c1, m2, c2)]
    got = student.run(probe_call, name="gaussian_kl_full", args=args)
    what = "gaussian_kl_full in 40 dimensions, float32, determinants near 1e80"
    _close(_tensor(got, (), what), _ref_kl_full(m1, c1, m2, c2), what, atol=1e-3, rtol=1e-3)


# Exercise 7: reparameterize -------------------------------------------------------------------


@grade_cell("t05_vae_reparam_check")
@points(1)
def test_reparam_values(student):
    """mu + exp(logvar / 2) * eps, with parameters (N, d) and noise (S, N, d) broadcasting."""
    gen = torch.Generator().manual_seed(104)
    mu, lv = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    eps = torch.randn(5, 4, 3, generator=gen)
    what = "reparameterize(mu (4, 3), logvar (4, 3), eps (5, 4, 3))"
    got = student.run(probe_call, name="reparameterize", args=[mu, lv, eps])
    _close(_tensor(got, (5, 4, 3), what), mu + (0.5 * lv).exp() * eps, what)


@grade_cell("t05_vae_reparam_check")
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


# Exercise 8: negative_elbo --------------------------------------------------------------------


def probe_neg_elbo_grad(ns, logits, x, mu, logvar):
    logits, mu = logits.clone().requires_grad_(True), mu.clone().requires_grad_(True)
    loss = ns["negative_elbo"](logits, x, mu, logvar)
    if not (isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.requires_grad):
        return {"loss": loss, "dlogits": None, "dmu": None}
    loss.backward()
    return {"loss": loss.detach(), "dlogits": logits.grad, "dmu": mu.grad}


def _ref_neg_elbo(logits, x, mu, logvar):
    rec = F.binary_cross_entropy_with_logits(logits.double(), x.double(), reduction="sum")
    prior = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    kl = kl_divergence(Independent(Normal(mu.double(), (0.5 * logvar.double()).exp()), 1), prior)
    return (rec + kl.sum()) / len(mu)


@grade_cell("t05_vae_neg_elbo_check")
@points(1)
def test_neg_elbo_values(student):
    """Images as (N, 1, 28, 28) and as (N, 784), latent sizes 2 and 16, against binary
    cross-entropy with logits plus kl_divergence, per image."""
    gen = torch.Generator().manual_seed(114)
    for shape, d in [((6, 1, 28, 28), 2), ((3, 784), 16)]:
        logits, x = torch.randn(*shape, generator=gen) * 4, torch.rand(*shape, generator=gen)
        mu, logvar = (
            torch.randn(shape[0], d, generator=gen),
            torch.randn(shape[0], d, generator=gen),
        )
        got = student.run(probe_call, name="negative_elbo", args=[logits, x, mu, logvar])
        what = f"negative_elbo on images of shape {shape}, latent size {d}"
        _close(
            got,
            _ref_neg_elbo(logits, x, mu, logvar).item(),
            what,
            rtol=1e-5,
            atol=1e-3,
        )


@grade_cell("t05_vae_neg_elbo_check")
@points(1)
def test_neg_elbo_gradients_and_large_logits(student):
    """Gradients (sigmoid(logit) - x) / N for the logits and mu / N for the means; logits of
    +-150 give the exact finite loss (BCE of sigmoid(logits) clips each pixel at 100 nats)."""
    gen = torch.Generator().manual_seed(115)
    logits, x = torch.randn(4, 784, generator=gen) * 2, torch.rand(4, 784, generator=gen)
    mu, logvar = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    got = student.run(probe_neg_elbo_grad, logits=logits, x=x, mu=mu, logvar=logvar)
    assert got["dlogits"] is not None, "negative_elbo: no gradient reached the logits"
    _close(
        _tensor(got["dlogits"], (4, 784), "d loss / d logits"),
        (torch.sigmoid(logits) - x) / 4,
        "negative_elbo: gradient with respect to the logits",
        atol=1e-6,
    )
    _close(
        _tensor(got["dmu"], (4, 3), "d loss / d mu"),
        mu / 4,
        "negative_elbo: gradient with respect to mu",
        atol=1e-6,
    )
    big = torch.full((2, 784), 150.0) * (2 * (torch.rand(2, 784, generator=gen) > 0.5) - 1)
    xb = (big > 0).float()
    got = student.run(
        probe_call, name="negative_elbo", args=[big, 1 - xb, torch.zeros(2, 2), torch.zeros(2, 2)]
    )
    what = "negative_elbo with logits of +-150, every pixel wrong"
    _close(
        got,
        _ref_neg_elbo(big, 1 - xb, torch.zeros(2, 2), torch.zeros(2, 2)).item(),
        what,
        rtol=1e-5,
    )
