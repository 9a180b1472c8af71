"""Metrics computed in the grader's process, never in a student's (labels stay with the grader)."""

from __future__ import annotations

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"{logits.shape[0]} predictions for {labels.shape[0]} labels")
    return (logits.argmax(dim=1) == labels).float().mean().item()


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts with true classes as rows and predicted classes as columns."""
    idx = labels.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


# --- Generative models (CW2): sample quality in the course classifier's feature space ----------


def _mean_cov(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = features.double()
    if f.dim() != 2 or len(f) < 2:
        raise ValueError(f"expected (N >= 2, D) features, got {tuple(f.shape)}")
    return f.mean(dim=0), torch.cov(f.T)


def frechet_distance(
    mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor
) -> float:
    """Squared Fréchet (2-Wasserstein) distance between two Gaussians.

    ||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2). The matrix square root is taken
    with symmetric eigendecompositions, which stay real and stable for the singular covariances
    that ReLU features give (scipy's general sqrtm can return complex noise there).
    """
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    w1, v1 = torch.linalg.eigh(cov1)
    root1 = (v1 * w1.clamp(min=0).sqrt()) @ v1.T
    middle = root1 @ cov2 @ root1
    w = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0)
    value = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * w.sqrt().sum()
    return max(value.item(), 0.0)


def fid(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two sets of (N, D) features."""
    return frechet_distance(*_mean_cov(features1), *_mean_cov(features2))


def kid(
    features1: torch.Tensor,
    features2: torch.Tensor,
    subsets: int = 50,
    subset_size: int = 1000,
    seed: int = 0,
) -> float:
    """Kernel Inception Distance: unbiased MMD^2 with the cubic kernel (x.y / D + 1)^3.

    Averaged over random subsets (as in Binkowski et al. 2018); unbiased, so two samples of one
    distribution give values around 0, possibly slightly negative.
    """
    f1, f2 = features1.double(), features2.double()
    m = min(subset_size, len(f1), len(f2))
    d = f1.shape[1]
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        a = f1[torch.randperm(len(f1), generator=g)[:m]]
        b = f2[torch.randperm(len(f2), generator=g)[:m]]
        kaa = (a @ a.T / d + 1) ** 3
        kbb = (b @ b.T / d + 1) ** 3
        kab = (a @ b.T / d + 1) ** 3
        within = (kaa.sum() - kaa.diagonal().sum() + kbb.sum() - kbb.diagonal().sum()) / (
            m * (m - 1)
        )
        total += (within - 2 * kab.mean()).item()
    return total / subsets


def class_histogram(pred: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Fraction of samples per predicted class (sums to 1)."""
    counts = torch.bincount(pred.long(), minlength=num_classes).double()
    return counts / counts.sum()


def class_coverage(pred: torch.Tensor, num_classes: int = 10, min_share: float = 0.02) -> int:
    """How many classes receive at least `min_share` of the samples: 10 = no class is missing.

    A generator that collapses onto a few modes leaves classes empty; uniform coverage of the ten
    Fashion-MNIST classes would give each 10%, so 2% flags a class that has all but vanished.
    """
    return int((class_histogram(pred, num_classes) >= min_share).sum().item())


def negative_elbo(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> float:
    """Negative ELBO in nats per image: Bernoulli reconstruction NLL + KL(q(z|x) || N(0, I)).

    `recon` holds Bernoulli means for one sample z ~ q(z|x) per image, so the result is an
    unbiased single-sample estimate; means are clamped away from 0 and 1 so that one saturated
    pixel gives a large but finite penalty.
    """
    n = len(x)
    p = recon.double().reshape(n, -1).clamp(1e-6, 1 - 1e-6)
    t = x.double().reshape(n, -1)
    nll = -(t * p.log() + (1 - t) * (1 - p).log()).sum(dim=1)
    mu, logvar = mu.double().reshape(n, -1), logvar.double().reshape(n, -1)
    kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=1)
    return (nll + kl).mean().item()
