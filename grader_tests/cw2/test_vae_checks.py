"""Hidden tests behind the notebook's VAE self-check (grade cell cw2_vae_checks, 3 points).

The same properties the check cell shows the student, computed in the sandboxed student process
on inputs chosen here: an untrained `VAE(latent_dim)`'s shapes and output range, and the loss of
a decoder that predicts 0.5 for every pixel with posteriors equal to the prior, which is
784 ln 2 nats per image whatever the image.
"""

import math

import torch

from dlcourse.grading import points, public

GRADE_CELL = "cw2_vae_checks"


def probe_untrained(ns, x):
    latent_dim = ns["latent_dim"]
    if not isinstance(latent_dim, int) or latent_dim <= 0:
        raise ValueError(f"latent_dim must be a positive int, not {latent_dim!r}")
    torch.manual_seed(0)
    with torch.no_grad():
        recon, mu, logvar = ns["VAE"](latent_dim)(x)
    return {"latent_dim": latent_dim, "recon": recon, "mu": list(mu.shape),
            "logvar": list(logvar.shape)}  # fmt: skip


def probe_half_decoder_loss(ns, x):
    latent_dim = ns["latent_dim"]
    zeros = torch.zeros(len(x), latent_dim)
    loss = ns["loss_function_VAE"](torch.full_like(x, 0.5), x, zeros, zeros, beta=1.0)
    return float(loss)


@public
@points(1)
def test_untrained_vae_shapes(student):
    """VAE(latent_dim) returns recon (N, 1, 28, 28), mu and logvar (N, latent_dim)."""
    out = student.run(probe_untrained, x=torch.rand(5, 1, 28, 28))
    d = out["latent_dim"]
    assert tuple(out["recon"].shape) == (5, 1, 28, 28), (
        f"recon of shape {tuple(out['recon'].shape)}"
    )
    assert out["mu"] == [5, d] and out["logvar"] == [5, d], (
        f"mu {out['mu']} and logvar {out['logvar']}, expected [5, {d}] each"
    )


@public
@points(1)
def test_untrained_vae_output_range(student):
    """The decoder's outputs are Bernoulli means, in [0, 1]."""
    recon = student.run(probe_untrained, x=torch.rand(5, 1, 28, 28))["recon"]
    assert recon.min() >= 0 and recon.max() <= 1, (
        f"recon spans [{recon.min():.3g}, {recon.max():.3g}]; a sigmoid keeps it in [0, 1]"
    )


@public
@points(1)
def test_loss_of_a_half_decoder(student):
    """A decoder predicting 0.5 with posterior = prior costs 784 ln 2 nats per image (0.01)."""
    x = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    loss = student.run(probe_half_decoder_loss, x=x)
    want = 784 * math.log(2)
    assert abs(loss - want) <= 1e-2, (
        f"loss_function_VAE gave {loss:.4f}, expected 784 ln 2 = {want:.4f} nats per image"
    )
