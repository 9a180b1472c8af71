"""Hidden tests for `loss_function_VAE` (grade cell cw2_vae_loss_hidden).

The contract (stated in the notebook): the negative ELBO with a Bernoulli likelihood and the KL
term weighted by beta, summed over pixels and latent dimensions, averaged over the batch.
Inputs are chosen so that every value can be derived by hand; a last test compares random inputs
with the formula.
"""

import math

import torch

from dlcourse.grading import points

GRADE_CELL = "cw2_vae_loss_hidden"
PIXELS = 784


def probe_loss(ns, recon_x, x, mu, logvar, beta):
    return float(ns["loss_function_VAE"](recon_x, x, mu, logvar, beta))


def reference_loss(recon_x, x, mu, logvar, beta):
    n = len(x)
    p, t = recon_x.double().reshape(n, -1), x.double().reshape(n, -1)
    bce = -(t * p.log() + (1 - t) * (1 - p).log()).sum()
    mu, logvar = mu.double(), logvar.double()
    kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum()
    return ((bce + beta * kl) / n).item()


def _check(student, expected, what, **inputs):
    got = student.run(probe_loss, **inputs)
    assert math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-3), (
        f"{what}: expected {expected:.4f} nats per image, got {got:.4f}"
    )


@points(2)
def test_loss_reconstruction_by_hand(student):
    """Predicting 0.5 for every pixel costs 784 ln 2 nats per image; N(0, I) posteriors no KL."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 28, 28, generator=g)
    zeros = torch.zeros(6, 8)
    for beta in (1.0, 3.0):
        _check(
            student, PIXELS * math.log(2), f"recon_x = 0.5, mu = 0, logvar = 0, beta = {beta}",
            recon_x=torch.full_like(x, 0.5), x=x, mu=zeros, logvar=zeros, beta=beta,
        )  # fmt: skip


@points(3)
def test_loss_kl_by_hand(student):
    """Binary images predicted at 0.99 confidence, posteriors with known KL, beta-weighted."""
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(5, 1, 28, 28, generator=g) > 0.5).float()
    recon = x * 0.98 + 0.01  # every pixel costs -ln 0.99, whatever its value
    bce = -PIXELS * math.log(0.99)
    cases = [  # (mu, logvar, beta, KL per image: 0.5 * sum(mu^2 + sigma^2 - 1 - ln sigma^2))
        (torch.ones(5, 4), torch.zeros(5, 4), 2.0, 0.5 * 4),
        (torch.zeros(5, 4), torch.full((5, 4), math.log(2)), 0.5, 0.5 * 4 * (1 - math.log(2))),
        (torch.full((5, 3), -2.0), torch.full((5, 3), -1.0), 1.0, 0.5 * 3 * (4 + math.exp(-1))),
    ]
    for mu, logvar, beta, kl in cases:
        what = f"mu = {mu[0, 0]:g}, logvar = {logvar[0, 0]:.3g}, beta = {beta}"
        _check(student, bce + beta * kl, what, recon_x=recon, x=x, mu=mu, logvar=logvar, beta=beta)


@points(3)
def test_loss_matches_formula(student):
    """Random inputs, several batch sizes and betas: the formula, averaged over the batch."""
    g = torch.Generator().manual_seed(3)
    for n, beta in ((1, 1.0), (7, 0.25), (16, 4.0)):
        inputs = dict(
            recon_x=torch.rand(n, 1, 28, 28, generator=g) * 0.98 + 0.01,
            x=torch.rand(n, 1, 28, 28, generator=g),
            mu=torch.randn(n, 10, generator=g),
            logvar=torch.randn(n, 10, generator=g) * 0.5,
            beta=beta,
        )
        _check(student, reference_loss(**inputs), f"batch of {n}, beta = {beta}", **inputs)
