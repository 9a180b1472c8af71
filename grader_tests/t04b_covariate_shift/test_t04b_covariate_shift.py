"""Hidden tests for T04b covariate shift: importance_weights, domain_classifier_weights,
effective_sample_size and weighted_cross_entropy.

Expected values are derived here: Bayes' rule for the weights, the exact density ratio of two
Gaussians (and scikit-learn's own fit on the same data) for the domain classifier, the formula
for the effective sample size, and F.cross_entropy for the loss. Inputs differ from the notebook's.
"""

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close


def probe_call(ns, name, args):
    return ns[name](*args)


def probe_loss(ns, logits, targets, weights):
    logits = logits.clone().requires_grad_(True)
    loss = ns["weighted_cross_entropy"](logits, targets, weights)
    grad = None
    if isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.requires_grad:
        loss.backward()
        grad = logits.grad
    return {"loss": loss, "grad": grad}


def _tensor(got, shape, what):
    assert isinstance(got, torch.Tensor), f"{what} returned a {type(got).__name__}, not a tensor"
    assert tuple(got.shape) == tuple(shape), f"{what}: shape {tuple(got.shape)}, expected {shape}"
    return got.double()


# This module's default tolerance: 1e-5 + 1e-5 x |expected|.
_close = functools.partial(close, rtol=1e-5)


# Exercise 1: importance_weights ---------------------------------------------------------------


@grade_cell("t04b_covariate_shift_weights_check")
@points(1)
def test_weights_bayes_rule(student):
    """w = p / (1 - p) * n_train / n_test for probabilities across (0, 1) and unequal pools."""
    p = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
    for n_train, n_test in [(300, 100), (100, 400), (777, 777)]:
        what = f"importance_weights(p, {n_train}, {n_test})"
        got = _tensor(student.run(probe_call, name="importance_weights", args=[p, n_train, n_test]),
                      p.shape, what)  # fmt: skip
        _close(got, p.double() / (1 - p.double()) * n_train / n_test, what)


@grade_cell("t04b_covariate_shift_weights_check")
@points(1)
def test_weights_keep_the_shape(student):
    """A 2-D tensor of probabilities gives weights of the same shape, element by element."""
    gen = torch.Generator().manual_seed(5)
    p = torch.rand(3, 4, generator=gen) * 0.9 + 0.05
    what = "importance_weights(p of shape (3, 4), 50, 200)"
    got = _tensor(student.run(probe_call, name="importance_weights", args=[p, 50, 200]),
                  (3, 4), what)  # fmt: skip
    _close(got, p.double() / (1 - p.double()) / 4, what)


# Exercise 2: domain_classifier_weights --------------------------------------------------------


def _gaussians(seed, n_train, n_test, shift):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n_train, len(shift), generator=gen)
    b = torch.randn(n_test, len(shift), generator=gen) + torch.tensor(shift)
    return a, b


def _sklearn_weights(a, b, C):
    X = np.concatenate([a.double().numpy(), b.double().numpy()])
    d = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    p = LogisticRegression(C=C, max_iter=1000).fit(X, d).predict_proba(a.double().numpy())[:, 1]
    return torch.as_tensor(p / (1 - p) * len(a) / len(b))


def _student_weights(student, a, b, C=None):
    args = [a, b] if C is None else [a, b, C]
    what = f"domain_classifier_weights on ({len(a)}, {a.shape[1]}) and ({len(b)}, {b.shape[1]})"
    what += "" if C is None else f" with C={C:g}"
    got = student.run(probe_call, name="domain_classifier_weights", args=args)
    assert isinstance(got, torch.Tensor), f"{what} returned a {type(got).__name__}, not a tensor"
    assert got.dtype == torch.float32, f"{what}: dtype {got.dtype}, expected torch.float32"
    got = _tensor(got, (len(a),), what)
    assert torch.isfinite(got).all() and (got > 0).all(), f"{what}: weights must be positive"
    return got, what


@grade_cell("t04b_covariate_shift_domain_check")
@points(1)
def test_domain_weights_match_the_true_ratio(student):
    """Train N(0, I), test N(mu, I) in 2-D with three times more training points: the weights
    approach the exact ratio exp(mu.x - |mu|^2 / 2), which needs the n_train / n_test factor."""
    mu = [0.8, -0.5]
    a, b = _gaussians(61, 6000, 2000, mu)
    got, what = _student_weights(student, a, b)
    m = torch.tensor(mu, dtype=torch.float64)
    true_log = a.double() @ m - (m @ m) / 2
    err = (got.log() - true_log).abs().mean().item()
    assert err < 0.1, (
        f"{what}: the logarithm of the weights is {err:.3f} away from the true density ratio's "
        "on average (at most 0.1)"
    )
    assert 0.9 < got.mean().item() < 1.1, (
        f"{what}: the weights average {got.mean().item():.3f} over the training points; "
        "E_train[w] = 1 (between 0.9 and 1.1)"
    )


@grade_cell("t04b_covariate_shift_domain_check")
@points(1)
def test_domain_weights_agree_with_sklearn(student):
    """The same fit as LogisticRegression(C=1.0, max_iter=1000) on stacked features and 0/1
    domain labels (tolerance 2%)."""
    a, b = _gaussians(62, 1500, 900, [0.3, 0.6, -0.4])
    got, what = _student_weights(student, a, b)
    _close(got, _sklearn_weights(a, b, 1.0), what, atol=1e-3, rtol=0.02)


@grade_cell("t04b_covariate_shift_domain_check")
@points(1)
def test_domain_weights_use_c(student):
    """C is the classifier's inverse penalty: a strong penalty flattens the weights."""
    a, b = _gaussians(63, 1200, 1200, [1.5])
    for C in (1e-3, 0.05):
        got, what = _student_weights(student, a, b, C)
        _close(got, _sklearn_weights(a, b, C), what, atol=1e-3, rtol=0.02)


# Exercise 3: effective_sample_size ------------------------------------------------------------


@grade_cell("t04b_covariate_shift_ess_check")
@points(1)
def test_effective_sample_size(student):
    """(sum w)^2 / sum w^2 for several weight vectors, returned as a number."""
    gen = torch.Generator().manual_seed(7)
    cases = [torch.rand(200, generator=gen) * 3, torch.tensor([4.0, 1.0]), torch.ones(7) * 2.5,
             torch.tensor([0.0, 3.0, 0.0, 1.0, 1.0])]  # fmt: skip
    for w in cases:
        got = student.run(probe_call, name="effective_sample_size", args=[w])
        what = f"effective_sample_size of {len(w)} weights"
        assert isinstance(got, int | float) and not isinstance(got, bool), (
            f"{what} returned a {type(got).__name__}, not a number"
        )
        want = (w.double().sum() ** 2 / (w.double() ** 2).sum()).item()
        assert math.isclose(got, want, rel_tol=1e-5), f"{what}: {got:.6g}, expected {want:.6g}"


# Exercise 4: weighted_cross_entropy -----------------------------------------------------------


def _loss_case(seed, n, k, weights):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=gen) * 2
    targets = torch.randint(0, k, (n,), generator=gen)
    return logits, targets, weights


def _reference_loss(logits, targets, weights):
    logits = logits.double().clone().requires_grad_(True)
    loss = (weights.double() * F.cross_entropy(logits, targets, reduction="none")).mean()
    loss.backward()
    return loss.detach(), logits.grad


@grade_cell("t04b_covariate_shift_loss_check")
@points(1)
def test_weighted_loss_value(student):
    """(1/N) sum w_i CE_i, also for weights that do not average to 1 (not divided by sum w)."""
    gen = torch.Generator().manual_seed(8)
    cases = [_loss_case(81, 6, 4, torch.rand(6, generator=gen) * 5),
             _loss_case(82, 10, 3, torch.full((10,), 2.0)),
             _loss_case(83, 5, 7, torch.tensor([0.0, 0.0, 3.0, 0.5, 0.0]))]  # fmt: skip
    for logits, targets, weights in cases:
        got = student.run(probe_loss, logits=logits, targets=targets, weights=weights)["loss"]
        what = f"weighted_cross_entropy on {tuple(logits.shape)} logits, weights {weights.tolist()}"
        assert isinstance(got, torch.Tensor), f"{what} returned a {type(got).__name__}"
        assert got.numel() == 1, f"{what}: a tensor of shape {tuple(got.shape)}, not a scalar"
        want, _ = _reference_loss(logits, targets, weights)
        _close(got.reshape(()).double(), want, what)


@grade_cell("t04b_covariate_shift_loss_check")
@points(1)
def test_weighted_loss_gradient(student):
    """The gradient with respect to the logits is the weighted one (autograd flows through)."""
    logits, targets, weights = _loss_case(84, 8, 5, torch.linspace(0.0, 3.5, 8))
    got = student.run(probe_loss, logits=logits, targets=targets, weights=weights)
    assert got["grad"] is not None, (
        "weighted_cross_entropy: no gradient reached the logits (is the loss built from them?)"
    )
    _, want = _reference_loss(logits, targets, weights)
    grad = _tensor(got["grad"], tuple(logits.shape), "the gradient of weighted_cross_entropy")
    _close(grad, want, "the gradient of weighted_cross_entropy with respect to the logits")
