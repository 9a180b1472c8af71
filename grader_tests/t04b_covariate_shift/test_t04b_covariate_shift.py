"""Hidden tests for T04b covariate shift: importance_weights, domain_classifier_weights,
calibration_bins, effective_sample_size, gaussian_ess_fraction, clip_for_ess,
weighted_cross_entropy, label_shift_weights and adjust_posteriors.

Expected values are derived here: Bayes' rule for the weights, the exact density ratio of two
Gaussians (and scikit-learn's own fit on the same data) for the domain classifier, the bins'
definition for calibration, the formulas for the effective sample size (and its Gaussian limit,
exp(-|mu|^2 / sigma^2)), the largest clipping level found by bisection here, F.cross_entropy for
the loss, and known label-shift weights pushed through a confusion matrix. Inputs differ from
the notebook's. Exercises built on earlier ones run with correct versions of those.
"""

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close


def probe_call(ns, name, args, reference=()):
    """ns[name](*args), with the earlier exercises named in `reference` replaced by correct
    versions while it runs: domain_classifier_weights builds on importance_weights and
    clip_for_ess on effective_sample_size, and one mistake should cost one exercise's marks."""

    def importance_weights(p_test_given_x, n_train, n_test):
        return p_test_given_x / (1 - p_test_given_x) * (n_train / n_test)

    def effective_sample_size(w):
        return float(w.sum() ** 2 / (w**2).sum())

    correct = {"importance_weights": importance_weights,
               "effective_sample_size": effective_sample_size}  # fmt: skip
    from dlcourse.grading.probing import call_with

    return call_with(ns[name], correct, reference, *args)


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
    got = student.run(probe_call, name="domain_classifier_weights", args=args,
                      reference=["importance_weights"])  # fmt: skip
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


# Exercise 3: calibration_bins -----------------------------------------------------------------


def _reference_bins(p, d, n_bins):
    p, d = p.double(), d.double()
    b = torch.clamp((p * n_bins).floor().long(), 0, n_bins - 1)
    counts = torch.zeros(n_bins, dtype=torch.float64)
    conf, freq = torch.zeros(n_bins, dtype=torch.float64), torch.zeros(n_bins, dtype=torch.float64)
    for i in range(len(p)):
        counts[b[i]] += 1
        conf[b[i]] += p[i]
        freq[b[i]] += d[i]
    return conf / counts, freq / counts, counts  # 0 / 0 is NaN for empty bins


def _bins(student, p, d, n_bins=None):
    args = [p, d] if n_bins is None else [p, d, n_bins]
    n_bins = n_bins or 10
    what = f"calibration_bins({len(p)} predictions{'' if len(args) == 2 else f', {n_bins}'})"
    got = student.run(probe_call, name="calibration_bins", args=args)
    ok = isinstance(got, tuple | list) and len(got) == 3
    assert ok, f"{what} returned {type(got).__name__}, not (confidence, frequency, counts)"
    want = _reference_bins(p, d, n_bins)
    for label, g, w in zip(("confidence", "frequency", "counts"), got, want, strict=True):
        g = _tensor(g, (n_bins,), f"{what}: {label}")
        empty = w.isnan()
        assert torch.equal(g.isnan(), empty), (
            f"{what}: {label} is NaN in bins {g.isnan().nonzero().flatten().tolist()}, "
            f"expected NaN in the empty bins {empty.nonzero().flatten().tolist()}"
        )
        _close(g[~empty], w[~empty], f"{what}: {label} of the non-empty bins")


@grade_cell("t04b_covariate_shift_calibration_check")
@points(1)
def test_calibration_bins_random_predictions(student):
    """Confidence, frequency and counts per bin for random predictions, 10 and 7 bins."""
    gen = torch.Generator().manual_seed(31)
    p = torch.rand(400, generator=gen, dtype=torch.float64)
    d = (torch.rand(400, generator=gen, dtype=torch.float64) < p**2).double()
    _bins(student, p, d)
    _bins(student, p[:150], d[:150], 7)


@grade_cell("t04b_covariate_shift_calibration_check")
@points(1)
def test_calibration_bins_edges_and_empty_bins(student):
    """p = 0 goes to the first bin and p = 1 to the last; bins nobody falls in are empty."""
    p = torch.tensor([0.0, 1.0, 1.0, 0.42, 0.47, 0.999], dtype=torch.float64)
    d = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    _bins(student, p, d)
    _bins(student, p, d, 4)


# Exercise 4: effective_sample_size ------------------------------------------------------------


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


# Exercise 5: gaussian_ess_fraction ------------------------------------------------------------


def _ess_fraction(student, mu, sigma=None):
    args = [mu] if sigma is None else [mu, sigma]
    got = student.run(probe_call, name="gaussian_ess_fraction", args=args)
    what = f"gaussian_ess_fraction({mu.tolist()}{'' if sigma is None else f', sigma={sigma}'})"
    assert type(got) is float, f"{what} returned {got!r}, expected a float"
    s2 = 1.0 if sigma is None else sigma**2
    # E[w] = 1 and E[w^2] = exp(|mu|^2 / sigma^2) for w = exp(mu.x / s2 - |mu|^2 / (2 s2)).
    want = math.exp(-float((mu.double() ** 2).sum()) / s2)
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-15), (
        f"{what} = {got:.6g}, expected {want:.6g}"
    )


@grade_cell("t04b_covariate_shift_ess_shift_check")
@points(1)
def test_gaussian_ess_fraction_one_dimension(student):
    """One dimension, unit variance: exp(-mu^2)."""
    for m in (0.0, 0.3, -1.0, 2.2):
        _ess_fraction(student, torch.tensor([m], dtype=torch.float64))


@grade_cell("t04b_covariate_shift_ess_shift_check")
@points(1)
def test_gaussian_ess_fraction_dimensions_and_sigma(student):
    """Several dimensions and other standard deviations: exp(-|mu|^2 / sigma^2)."""
    _ess_fraction(student, torch.tensor([0.5, -0.5, 1.0]))
    _ess_fraction(student, torch.tensor([1.0, 2.0]), 3.0)
    _ess_fraction(student, torch.tensor([0.1]), 0.25)


# Exercise 6: clip_for_ess ---------------------------------------------------------------------


def _ess(w):
    w = w.double()
    return float(w.sum() ** 2 / (w**2).sum())


def _clip(student, w, fraction):
    what = f"clip_for_ess({len(w)} weights, {fraction})"
    got = student.run(probe_call, name="clip_for_ess", args=[w, fraction],
                      reference=["effective_sample_size"])  # fmt: skip
    ok = isinstance(got, tuple | list) and len(got) == 2 and isinstance(got[0], torch.Tensor)
    assert ok, f"{what} returned {type(got).__name__}, expected (clipped weights, c)"
    clipped, c = got
    assert isinstance(c, int | float) and not isinstance(c, bool), (
        f"{what}: c is {c!r}, not a number"
    )
    clipped = _tensor(clipped, tuple(w.shape), f"{what}: the clipped weights")
    _close(clipped, torch.clamp(w.double(), max=c), f"{what}: the clipped weights", "min(w, c)")
    return clipped, float(c), what


@grade_cell("t04b_covariate_shift_clip_check")
@points(1)
def test_clip_for_ess_meets_the_target_with_the_largest_c(student):
    """Heavy-tailed weights: the target is met, and a c 0.1% larger would miss it."""
    gen = torch.Generator().manual_seed(41)
    for fraction in (0.5, 0.8):
        w = torch.exp(torch.randn(500, generator=gen) * 1.5)
        clipped, c, what = _clip(student, w, fraction)
        target = fraction * len(w)
        assert _ess(clipped) >= target * (1 - 1e-6), (
            f"{what}: n_eff {_ess(clipped):.2f}, below the target {target:.2f}"
        )
        larger = _ess(torch.clamp(w.double(), max=c * 1.001))
        assert larger < target, (
            f"{what}: c = {c:.5g} is not the largest level; {c * 1.001:.5g} still gives n_eff "
            f"{larger:.2f} >= {target:.2f}"
        )


@grade_cell("t04b_covariate_shift_clip_check")
@points(1)
def test_clip_for_ess_leaves_good_weights_alone(student):
    """Weights that already meet the target come back unchanged, with c their maximum."""
    w = torch.tensor([1.0, 1.2, 0.9, 1.1, 0.8, 1.3])
    clipped, c, what = _clip(student, w, 0.9)
    assert math.isclose(c, 1.3, rel_tol=1e-6), f"{what}: c = {c:.6g}, expected the maximum 1.3"
    _close(clipped, w.double(), f"{what}: the clipped weights", "the weights themselves")


# Exercise 7: weighted_cross_entropy -----------------------------------------------------------


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


# Exercise 8: label_shift_weights and adjust_posteriors ----------------------------------------


def _shifted_confusion(seed, k):
    """A joint confusion matrix P_train(y_hat = i, y = j) of a classifier right about 70% of the
    time, the training class frequencies, and weights of a label shift."""
    gen = torch.Generator().manual_seed(seed)
    conditional = torch.rand(k, k, generator=gen, dtype=torch.float64) + 3.0 * torch.eye(k)
    conditional /= conditional.sum(dim=0, keepdim=True)  # columns: P(y_hat | y = j)
    p_train = torch.rand(k, generator=gen, dtype=torch.float64) + 0.5
    p_train /= p_train.sum()
    p_test = torch.rand(k, generator=gen, dtype=torch.float64) + 0.1
    p_test /= p_test.sum()
    return conditional * p_train, p_test / p_train


def _label_weights(student, confusion, mu):
    what = f"label_shift_weights({confusion.shape[0]}x{confusion.shape[1]} confusion, mu)"
    got = student.run(probe_call, name="label_shift_weights", args=[confusion, mu])
    return _tensor(got, (len(mu),), what), what


@grade_cell("t04b_covariate_shift_label_shift_check")
@points(1)
def test_label_shift_weights_recovered(student):
    """mu = C w for known weights w: the weights come back (4 and 7 classes)."""
    for seed, k in [(51, 4), (52, 7)]:
        confusion, w = _shifted_confusion(seed, k)
        got, what = _label_weights(student, confusion, confusion @ w)
        _close(got, w, what, "the weights that produced mu")


@grade_cell("t04b_covariate_shift_label_shift_check")
@points(1)
def test_label_shift_weights_negative_set_to_zero(student):
    """A mu that no non-negative w explains: the negative entries of the solution become 0."""
    confusion = torch.tensor([[0.3, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.2]],
                             dtype=torch.float64)  # fmt: skip
    mu = torch.tensor([0.05, 0.5, 0.45], dtype=torch.float64)
    solution = torch.linalg.solve(confusion, mu)
    assert (solution < 0).any()  # the case this test is about
    got, what = _label_weights(student, confusion, mu)
    _close(got, solution.clamp(min=0), what, "the solution with negative entries set to 0")


@grade_cell("t04b_covariate_shift_label_shift_check")
@points(1)
def test_adjust_posteriors(student):
    """Probabilities times w, each row normalised; w = 1 changes nothing."""
    gen = torch.Generator().manual_seed(53)
    probs = torch.softmax(torch.randn(6, 5, generator=gen, dtype=torch.float64) * 2, dim=1)
    w = torch.tensor([0.2, 3.0, 1.0, 0.0, 1.5], dtype=torch.float64)
    for weights in (w, torch.ones(5, dtype=torch.float64)):
        what = f"adjust_posteriors(probs of shape (6, 5), w = {weights.tolist()})"
        got = _tensor(student.run(probe_call, name="adjust_posteriors", args=[probs, weights]),
                      (6, 5), what)  # fmt: skip
        want = probs * weights
        _close(got, want / want.sum(dim=1, keepdim=True), what, "Bayes' rule")
