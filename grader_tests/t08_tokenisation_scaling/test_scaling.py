"""Hidden tests for t08_tokenisation_scaling's evaluation and scaling exercises (5 points).

`bits_per_char` is compared with the formula (loss x tokens / (characters x ln 2)) on values
other than the notebook's; `fit_power_law` with exact power laws (a and alpha known by
construction) and, on noisy points, with NumPy's least-squares line through (ln N, ln L).
"""

import math

import numpy as np
import torch

from dlcourse.grading import grade_cell, points

BPC_CELL = "t08_tokenisation_scaling_bits_per_char_check"
FIT_CELL = "t08_tokenisation_scaling_fit_power_law_check"


def probe_bpc(ns, loss, n_tokens, n_chars):
    out = ns["bits_per_char"](loss, n_tokens, n_chars)
    return float(out)


def probe_fit(ns, n, loss, as_tensor):
    if as_tensor:
        n, loss = torch.tensor(n, dtype=torch.float64), torch.tensor(loss, dtype=torch.float64)
    out = ns["fit_power_law"](n, loss)
    if not isinstance(out, tuple | list) or len(out) != 2:
        return {"ok": False, "type": type(out).__name__}
    return {"ok": True, "a": float(out[0]), "alpha": float(out[1])}


def _bpc(student, loss, n_tokens, n_chars):
    got = student.run(probe_bpc, loss=loss, n_tokens=n_tokens, n_chars=n_chars)
    want = loss * n_tokens / (n_chars * math.log(2))
    what = f"bits_per_char({loss}, {n_tokens} tokens, {n_chars} characters)"
    assert math.isclose(got, want, rel_tol=1e-9), f"{what} returned {got:.6g}, expected {want:.6g}"


def _fit(student, n, loss, as_tensor=False):
    got = student.run(probe_fit, n=list(n), loss=list(loss), as_tensor=as_tensor)
    assert got["ok"], f"fit_power_law returned a {got['type']}, expected a pair (a, alpha)"
    return got["a"], got["alpha"]


@grade_cell(BPC_CELL)
@points(1)
def test_bits_per_char_one_token_per_character(student):
    """One token per character: bits per character is the loss in bits."""
    _bpc(student, 1.7, 5000, 5000)
    _bpc(student, 2.3, 120, 120)


@grade_cell(BPC_CELL)
@points(1)
def test_bits_per_char_several_characters_per_token(student):
    """BPE-like ratios: 2.2 and 3.7 characters per token."""
    _bpc(student, 3.8, 1000, 2200)
    _bpc(student, 5.05, 2700, 9990)


N_EXACT = [50.0, 400.0, 3000.0, 2e4, 1.5e5]
A_EXACT, ALPHA_EXACT = 2.5, 0.3


@grade_cell(FIT_CELL)
@points(1)
def test_fit_exact_exponent(student):
    """Points exactly on L = 2.5 N^-0.3 (given as lists): alpha = 0.3, positive."""
    _, alpha = _fit(student, N_EXACT, [A_EXACT * n**-ALPHA_EXACT for n in N_EXACT])
    assert math.isclose(alpha, ALPHA_EXACT, rel_tol=1e-6), (
        f"on points exactly on L = 2.5 N^-0.3, alpha = {alpha:.6g}, expected 0.3"
    )


@grade_cell(FIT_CELL)
@points(1)
def test_fit_exact_prefactor(student):
    """Points exactly on L = 2.5 N^-0.3, and on L = 40 N^-0.05 given as tensors: a = 2.5, 40."""
    a, _ = _fit(student, N_EXACT, [A_EXACT * n**-ALPHA_EXACT for n in N_EXACT])
    assert math.isclose(a, A_EXACT, rel_tol=1e-6), (
        f"on points exactly on L = 2.5 N^-0.3, a = {a:.6g}, expected 2.5"
    )
    n = [1e4, 1e5, 1e6, 1e7]
    a, alpha = _fit(student, n, [40.0 * v**-0.05 for v in n], as_tensor=True)
    assert math.isclose(a, 40.0, rel_tol=1e-6) and math.isclose(alpha, 0.05, rel_tol=1e-6), (
        f"on points exactly on L = 40 N^-0.05 (tensors), (a, alpha) = ({a:.6g}, {alpha:.6g}), "
        "expected (40, 0.05)"
    )


@grade_cell(FIT_CELL)
@points(1)
def test_fit_noisy_least_squares(student):
    """Seven noisy points: the least-squares line through (ln N, ln L), as np.polyfit finds it."""
    rng = np.random.default_rng(8)
    n = np.geomspace(2e3, 5e6, 7)
    loss = 3.4 * n**-0.08 * np.exp(rng.normal(0, 0.03, size=7))
    slope, intercept = np.polyfit(np.log(n), np.log(loss), 1)
    a, alpha = _fit(student, n.tolist(), loss.tolist(), as_tensor=True)
    want_a, want_alpha = math.exp(intercept), -slope
    assert math.isclose(alpha, want_alpha, rel_tol=1e-5) and math.isclose(
        a, want_a, rel_tol=1e-5
    ), (
        f"on 7 noisy points, (a, alpha) = ({a:.6g}, {alpha:.6g}); the least-squares line "
        f"through (ln N, ln L) gives ({want_a:.6g}, {want_alpha:.6g})"
    )
