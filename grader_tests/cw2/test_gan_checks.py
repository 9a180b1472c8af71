"""Hidden tests behind the notebook's DCGAN self-check (grade cell cw2_gan_checks, 3 points).

What the check cell shows the student, computed in the sandboxed student process on noise drawn
here: untrained models after `weights_init` give (N, 1, 32, 32) images in [-1, 1] and one score
per image.
"""

import torch

from dlcourse.grading import points, public

GRADE_CELL = "cw2_gan_checks"


def probe_untrained(ns, n, seed):
    torch.manual_seed(seed)
    g, d = ns["Generator"](), ns["Discriminator"]()
    g.apply(ns["weights_init"])
    d.apply(ns["weights_init"])
    z = torch.randn(n, ns["latent_size"], 1, 1, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        fake = g(z)
        scores = d(fake)
    return {"fake": fake, "scores": scores.numel()}


@public
@points(1)
def test_generator_shape(student):
    """Generator() maps noise (N, latent_size, 1, 1) to images (N, 1, 32, 32)."""
    fake = student.run(probe_untrained, n=4, seed=0)["fake"]
    assert tuple(fake.shape) == (4, 1, 32, 32), f"Generator gave {tuple(fake.shape)} for 4 noises"


@public
@points(1)
def test_generator_range(student):
    """The untrained generator's images lie in [-1, 1] (a tanh output)."""
    fake = student.run(probe_untrained, n=16, seed=1)["fake"]
    assert fake.min() >= -1 and fake.max() <= 1, (
        f"outputs span [{fake.min():.3g}, {fake.max():.3g}]; expected within [-1, 1]"
    )


@public
@points(1)
def test_one_score_per_image(student):
    """Discriminator() gives one score per image."""
    out = student.run(probe_untrained, n=6, seed=2)
    assert out["scores"] == 6, f"the discriminator gave {out['scores']} numbers for 6 images"
