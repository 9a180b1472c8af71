"""CW2's reference weights, the course classifier and the feature space the grader measures in.

The manifest's figures are recomputed from the weight files, so a threshold traced back to them
rests on something reproducible; FID in the classifier's space must behave sensibly on real data
(real near, noise far, monotone in added noise).
"""

import nbformat
import pytest
import torch

from dlcourse import classifier, course, data, metrics, notebook, weights
from dlcourse.reference import cw2

SOURCE = course.ROOT / "source" / "cw2"
FILES = ("vae_model.pt", "gan_generator.pt", "gan_discriminator.pt")


@pytest.fixture(scope="module")
def fmnist():
    return data.load_fashion_mnist(smoke=False)


@pytest.fixture(scope="module")
def clf():
    return classifier.load_classifier()


@pytest.fixture(scope="module")
def ns():
    return notebook.load_trusted(SOURCE / "cw2.ipynb")


def test_instructor_submission_weights_are_the_reference_weights():
    for name in FILES:
        assert weights.sha256(SOURCE / name) == weights.manifest()[name]["sha256"], name


def test_marks_add_up_to_100_with_50_per_part():
    nb = nbformat.read(SOURCE / "cw2.ipynb", as_version=4)
    part2 = next(i for i, c in enumerate(nb.cells) if c.source.startswith("## Part 2"))
    points = [
        (i < part2, c.metadata["nbgrader"]["points"])
        for i, c in enumerate(nb.cells)
        if c.metadata.get("nbgrader", {}).get("grade")
    ]
    assert sum(p for first, p in points if first) == 50
    assert sum(p for first, p in points if not first) == 50


def test_classifier_accuracy_matches_manifest(fmnist, clf):
    _, pred = classifier.embed(clf, classifier.to_gan_range(fmnist.test.x))
    acc = (pred == fmnist.test.y).double().mean().item()
    assert acc == pytest.approx(
        weights.manifest()["fmnist_classifier.pt"]["metric"]["test_accuracy"], abs=1e-4
    )
    assert acc > 0.9


def test_reference_vae_elbo_matches_manifest_and_beats_the_baseline(fmnist, ns):
    model = ns["VAE"](ns["latent_dim"])
    model.load_state_dict(weights.load_state_dict("vae_model.pt"))
    value = cw2.vae_negative_elbo(model, fmnist.test.x)
    metric = weights.manifest()["vae_model.pt"]["metric"]
    assert value == pytest.approx(metric["test_negative_elbo"], abs=0.01)
    assert value < metric["baseline_mlp_negative_elbo"]


def test_reference_generator_quality_matches_manifest(fmnist, clf, ns):
    gen = ns["Generator"]()
    gen.load_state_dict(weights.load_state_dict("gan_generator.pt"))
    samples = cw2.generate(gen, cw2.sample_noise(cw2.SAMPLES, ns["latent_size"]))
    real, _ = classifier.embed(clf, classifier.to_gan_range(fmnist.test.x))
    q = cw2.quality(clf, samples, real)
    recorded = weights.manifest()["gan_generator.pt"]["metric"]
    assert q["fid"] == pytest.approx(recorded["fid"], rel=1e-3)
    assert q["coverage"] == recorded["coverage"]


def test_fid_in_classifier_space_real_near_noise_far_monotone_in_noise(fmnist, clf):
    real, _ = classifier.embed(clf, classifier.to_gan_range(fmnist.test.x[:3000]))
    train = classifier.to_gan_range(fmnist.train.x[:3000])
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(train.shape, generator=g)
    fids = []
    for sigma in (0.0, 0.1, 0.2, 0.4):
        feats, _ = classifier.embed(clf, (train + sigma * noise).clamp(-1, 1))
        fids.append(metrics.fid(feats, real))
    uniform, _ = classifier.embed(clf, torch.rand(train.shape, generator=g) * 2 - 1)
    assert fids == sorted(fids), fids
    assert metrics.fid(uniform, real) > 20 * fids[0]
