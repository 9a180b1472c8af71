"""Hidden tests for t08_tokenisation_scaling's evaluation and scaling exercises (8 points).

`bits_per_char` is compared with the formula (loss x tokens / (characters x ln 2)) on values
other than the notebook's; `fit_power_law` with exact power laws (a and alpha known by
construction) and, on noisy points, with NumPy's least-squares line through (ln N, ln L);
`fit_scaling_law` (L = E + A N^-alpha) with exact laws (E, A and alpha known by construction)
and, on noisy points, by its squared error against the least one, found here by variable
projection on a fine grid of exponents.
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


# fit_scaling_law: L = E + A N^-alpha ----------------------------------------------------------

LAW_CELL = "t08_tokenisation_scaling_fit_scaling_law_check"


def probe_fit_law(ns, n, loss, kind):
    if kind == "tensor":
        n, loss = torch.tensor(n, dtype=torch.float64), torch.tensor(loss, dtype=torch.float64)
    elif kind == "numpy":
        n, loss = np.asarray(n), np.asarray(loss)
    out = ns["fit_scaling_law"](n, loss)
    if not isinstance(out, tuple | list) or len(out) != 3:
        return {"ok": False, "type": type(out).__name__}
    return {"ok": True, "fit": [float(v) for v in out]}


def _fit_law(student, n, loss, kind="list"):
    got = student.run(
        probe_fit_law, n=[float(v) for v in n], loss=[float(v) for v in loss], kind=kind
    )
    assert got["ok"], f"fit_scaling_law returned a {got['type']}, expected (E, A, alpha)"
    return got["fit"]


def _sse(n, loss, e, a, alpha):
    n, loss = np.asarray(n, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    return float(((loss - e - a * n**-alpha) ** 2).sum())


def _best_sse(n, loss):
    """The least squared error of E + A N^-alpha over alpha in [0.01, 2], by variable projection
    on a grid of 20,001 exponents (E and A by linear least squares for each)."""
    x, y = np.asarray(n, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    best = math.inf
    for alpha in np.linspace(0.01, 2.0, 20001):
        design = np.stack([np.ones_like(x), x**-alpha], axis=1)
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        best = min(best, float(((design @ coef - y) ** 2).sum()))
    return best


@grade_cell(LAW_CELL)
@points(1)
def test_law_exact_points(student):
    """Points exactly on L = 1.69 + 406.4 N^-0.34 (Chinchilla's parameter term) over five orders
    of magnitude, as lists and as tensors: E, A and alpha come back (relative tolerance 1e-4)."""
    n = np.geomspace(1e5, 1e10, 8)
    loss = 1.69 + 406.4 * n**-0.34
    for kind in ("list", "tensor"):
        e, a, alpha = _fit_law(student, n, loss, kind)
        for name, got, want in [("E", e, 1.69), ("A", a, 406.4), ("alpha", alpha, 0.34)]:
            assert math.isclose(got, want, rel_tol=1e-4), (
                f"fit_scaling_law on points exactly on L = 1.69 + 406.4 N^-0.34 ({kind}s): "
                f"{name} = {got:.6g}, expected {want}"
            )


@grade_cell(LAW_CELL)
@points(1)
def test_law_noisy_points_least_squares(student):
    """Ten noisy points: the fit's squared error is the least one over alpha in [0.01, 2] (found
    here on a fine grid), within 1e-6 relative."""
    rng = np.random.default_rng(21)
    n = np.geomspace(3e3, 3e7, 10)
    loss = 1.1 + 9.0 * n**-0.25 + rng.normal(0, 0.01, size=10)
    e, a, alpha = _fit_law(student, n, loss, "numpy")
    got, best = _sse(n, loss, e, a, alpha), _best_sse(n, loss)
    assert got <= best * (1 + 1e-6) + 1e-15, (
        f"fit_scaling_law on 10 noisy points: squared error {got:.6g} with (E, A, alpha) = "
        f"({e:.4g}, {a:.4g}, {alpha:.4g}); the least squares fit reaches {best:.6g}"
    )


@grade_cell(LAW_CELL)
@points(1)
def test_law_pure_power_law_and_few_points(student):
    """Four points on a pure power law (E = 0) are fitted exactly; five noisy points of a ladder
    like the tutorial's get the least squared error (its exponent may sit at the edge, 0.01)."""
    n = [1e3, 1e4, 1e5, 1e6]
    e, a, alpha = _fit_law(student, n, [3.0 * v**-0.2 for v in n])
    assert (
        abs(e) < 1e-6
        and math.isclose(a, 3.0, rel_tol=1e-5)
        and math.isclose(alpha, 0.2, rel_tol=1e-5)
    ), (
        f"fit_scaling_law on points exactly on L = 3 N^-0.2: (E, A, alpha) = ({e:.4g}, {a:.6g}, "
        f"{alpha:.6g}), expected (0, 3, 0.2)"
    )
    n = [6592, 14496, 25472, 56640, 100096]
    loss = [2.679, 2.604, 2.542, 2.429, 2.281]
    e, a, alpha = _fit_law(student, n, loss)
    got, best = _sse(n, loss, e, a, alpha), _best_sse(n, loss)
    assert got <= best * (1 + 1e-6) + 1e-15, (
        f"fit_scaling_law on a five-model ladder: squared error {got:.6g}; the least squares fit "
        f"over alpha in [0.01, 2] reaches {best:.6g}"
    )
