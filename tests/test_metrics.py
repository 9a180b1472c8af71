"""dlcourse.metrics: classification metrics, and FID / KID / coverage / ELBO for CW2.

FID is checked against the closed form of the Fréchet distance between Gaussians (including
non-commuting covariances, against scipy's sqrtm), and for sensible behaviour on samples:
same distribution near 0, a shift far, more added noise further.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from dlcourse import metrics


def test_accuracy_and_confusion_matrix():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    labels = torch.tensor([0, 0, 0])
    assert metrics.accuracy(logits, labels) == pytest.approx(2 / 3)
    cm = metrics.confusion_matrix(logits.argmax(1), labels, 2)
    assert cm.tolist() == [[2, 1], [0, 0]]


def test_frechet_distance_one_dimensional_closed_form():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    d = metrics.frechet_distance(
        torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[9.0]])
    )
    assert d == pytest.approx(3.0**2 + (2.0 - 3.0) ** 2)


def test_frechet_distance_diagonal_closed_form():
    a, b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.0])
    mu1, mu2 = torch.zeros(3), torch.tensor([1.0, 0.0, -2.0])
    expected = 5.0 + ((a.sqrt() - b.sqrt()) ** 2).sum().item()
    d = metrics.frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b))
    assert d == pytest.approx(expected)


def test_frechet_distance_matches_sqrtm_for_general_covariances():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 6, generator=g), torch.randn(6, 6, generator=g)
    c1, c2 = (a @ a.T + 0.1 * torch.eye(6)).double(), (b @ b.T + 0.1 * torch.eye(6)).double()
    mu1, mu2 = torch.randn(6, generator=g).double(), torch.randn(6, generator=g).double()
    covmean = scipy.linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    expected = ((mu1 - mu2) ** 2).sum().item() + np.trace(c1.numpy() + c2.numpy() - 2 * covmean)
    assert metrics.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_a_gaussian_with_itself_is_zero_even_if_singular():
    v = torch.tensor([[1.0, 2.0, 0.0]])
    cov = v.T @ v  # rank 1, as ReLU features often give
    assert metrics.frechet_distance(torch.ones(3), cov, torch.ones(3), cov) == pytest.approx(
        0.0, abs=1e-6
    )


def _gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_fid_same_distribution_near_shifted_far_and_monotone_in_noise():
    real = _gaussian(4000, 16, 0)
    same = metrics.fid(real, _gaussian(4000, 16, 1))
    assert same < 0.1  # only the finite-sample bias: about d(d+1)/n
    assert metrics.fid(real, _gaussian(4000, 16, 1, shift=1.0)) == pytest.approx(
        16 + same, rel=0.05
    )
    base = _gaussian(4000, 16, 2)
    noise = _gaussian(4000, 16, 3)
    fids = [metrics.fid(real, base + s * noise) for s in (0.0, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids) and fids[-1] > 10 * fids[0]
    # Closed form for N(0, I) vs N(0, (1 + s^2) I): d (sqrt(1 + s^2) - 1)^2.
    assert fids[2] == pytest.approx(16 * (math.sqrt(2) - 1) ** 2, abs=0.15)


def test_kid_near_zero_for_one_distribution_positive_otherwise():
    real = _gaussian(3000, 16, 0)
    same = metrics.kid(real, _gaussian(3000, 16, 1), subsets=10, subset_size=500)
    far = metrics.kid(real, _gaussian(3000, 16, 1, shift=0.5), subsets=10, subset_size=500)
    assert abs(same) < 0.01
    assert far > 0.1
    noisy = [
        metrics.kid(real, _gaussian(3000, 16, 2) * (1 + s), subsets=10, subset_size=500)
        for s in (0.0, 0.3, 0.6)
    ]
    assert noisy == sorted(noisy)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    x, y = _gaussian(30, 4, 0), _gaussian(30, 4, 1, shift=0.3)

    def k(a, b):
        return ((a.double() @ b.double().T) / 4 + 1) ** 3

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n = 30
    expected = (
        (kxx.sum() - kxx.trace()) / (n * (n - 1))
        + (kyy.sum() - kyy.trace()) / (n * (n - 1))
        - 2 * kxy.mean()
    ).item()
    # With subset_size = n every subset is the whole set (in some order): the exact estimator.
    assert metrics.kid(x, y, subsets=3, subset_size=n) == pytest.approx(expected, rel=1e-9)


def test_class_histogram_and_coverage():
    pred = torch.tensor([0] * 50 + [1] * 45 + [2] * 4 + [3])
    hist = metrics.class_histogram(pred)
    assert hist.sum().item() == pytest.approx(1.0)
    assert hist[:4].tolist() == pytest.approx([0.5, 0.45, 0.04, 0.01])
    assert metrics.class_coverage(pred) == 3  # class 3 holds 1% < 2%
    assert metrics.class_coverage(torch.arange(10).repeat(10)) == 10
    assert metrics.class_coverage(torch.zeros(100, dtype=torch.long)) == 1


def test_negative_elbo_by_hand():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    zeros = torch.zeros(4, 8)
    half = torch.full_like(x, 0.5)
    assert metrics.negative_elbo(half, x, zeros, zeros) == pytest.approx(784 * math.log(2))
    # KL(N(1, 1) || N(0, 1)) = 0.5 per dimension.
    ones = torch.ones(4, 8)
    assert metrics.negative_elbo(half, x, ones, zeros) == pytest.approx(784 * math.log(2) + 4)
    # Saturated wrong predictions are clamped: large but finite.
    worst = metrics.negative_elbo(torch.zeros_like(x), torch.ones_like(x), zeros, zeros)
    assert math.isfinite(worst) and worst == pytest.approx(-784 * math.log(1e-6), rel=1e-6)
