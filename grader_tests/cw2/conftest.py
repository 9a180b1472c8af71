"""What several CW2 modules share: the test images, the course classifier, the generator's samples.

Each is computed once per submission (session fixtures; pytest re-raises a cached failure for
every test that needs it, so a broken generator costs each quality test its points with the same
message). The grader draws the noise and the VAE's latent samples with fixed seeds, so marks do
not depend on luck.
"""

import pytest
import torch

from dlcourse import classifier, data
from dlcourse.grading import heldout
from dlcourse.reference.cw2 import SAMPLE_SEED, SAMPLES

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _parameter_count(state_dict: dict[str, torch.Tensor]) -> int:
    return sum(v.numel() for k, v in state_dict.items() if not k.endswith(BN_BUFFERS))


@pytest.fixture(scope="session")
def parameter_count():
    """Numbers in a state_dict other than batch-norm statistics.

    Counted here from the file, so nothing the student's code does can hide parameters; a
    strict load (the other tests) guarantees the file holds every parameter of the class.
    """
    return _parameter_count


def probe_latent_size(ns):
    size = ns["latent_size"]
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"latent_size must be a positive int, not {size!r}")
    return size


def probe_generate(ns, z):
    model = ns.load_model("Generator", "gan_generator.pt")
    with torch.no_grad():
        return torch.cat([model(zb) for zb in z.split(1000)])


@pytest.fixture(scope="session")
def test_split() -> data.Split:
    """The public test images: the real distribution GAN samples are compared with."""
    return data.load_fashion_mnist(smoke=False).test


@pytest.fixture(scope="session")
def private_split() -> data.Split:
    """The private test set (dlcourse.grading.heldout) the VAE's ELBO is measured on."""
    return heldout.private_test_split()


@pytest.fixture(scope="session")
def course_classifier() -> classifier.FashionClassifier:
    return classifier.load_classifier()


@pytest.fixture(scope="session")
def real_features(course_classifier, test_split) -> torch.Tensor:
    """Course-classifier features of the 10,000 test images (GAN format: 32 x 32 in [-1, 1])."""
    feats, _ = classifier.embed(course_classifier, classifier.to_gan_range(test_split.x))
    return feats


@pytest.fixture(scope="session")
def gan_samples(student) -> torch.Tensor:
    """10,000 samples from the submitted generator, for noise drawn here with a fixed seed."""
    latent_size = student.run(probe_latent_size)
    g = torch.Generator().manual_seed(SAMPLE_SEED)
    z = torch.randn(SAMPLES, latent_size, 1, 1, generator=g)
    samples = student.run(probe_generate, z=z)
    assert isinstance(samples, torch.Tensor), f"Generator returned a {type(samples).__name__}"
    assert tuple(samples.shape) == (SAMPLES, 1, 32, 32), (
        f"Generator gave {tuple(samples.shape)} for {SAMPLES} noise vectors; "
        f"expected ({SAMPLES}, 1, 32, 32)"
    )
    assert torch.isfinite(samples).all(), "Generator outputs contain NaN or infinity"
    return samples.float()
