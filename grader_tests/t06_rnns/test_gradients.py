"""Hidden tests for Exercise 5, grad_norm_per_step (grade cell t06_rnns_grad_norms_check).

One value derivable by hand (a 1-unit ReLU RNN: g_t = sqrt(N) * w ** (T - 1 - t)) and one
comparison with autograd run here on the same LSTM.
"""

import math

import torch
import torch.nn as nn

from dlcourse.grading import points

GRADE_CELL = "t06_rnns_grad_norms_check"


def probe_grad_norms(ns, kind, sizes, state, x):
    cls = {"rnn_relu": nn.RNN, "lstm": nn.LSTM}[kind]
    kwargs = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    model = cls(*sizes, **kwargs)
    model.load_state_dict(state)
    before = x.clone()
    g = ns["grad_norm_per_step"](model, x)
    unchanged = bool(torch.equal(x, before))
    g = g.detach() if isinstance(g, torch.Tensor) else repr(g)[:80]
    return {"g": g, "x_unchanged": unchanged}


def _check(reply, want, what):
    g = reply["g"]
    assert isinstance(g, torch.Tensor), f"{what}: returned a {type(g).__name__}, not a tensor"
    assert tuple(g.shape) == tuple(want.shape), (
        f"{what}: shape {tuple(g.shape)}, expected {tuple(want.shape)} (one norm per time step)"
    )
    g = g.double()
    err = (g - want).abs().max().item()
    assert torch.allclose(g, want, rtol=1e-4, atol=1e-6), (
        f"{what}: differs from the expected norms by up to {err:.3g}; measured first/last "
        f"{g[0].item():.4g}/{g[-1].item():.4g}, expected {want[0].item():.4g}/{want[-1].item():.4g}"
    )


@points(1)
def test_hand_derived_relu_rnn(student):
    """1-unit ReLU RNN, w_hh = 1.5, batch of 4 positive sequences: g_t = 2 * 1.5 ** (T-1-t)."""
    t, n, w = 9, 4, 1.5
    state = {
        "weight_ih_l0": torch.ones(1, 1), "weight_hh_l0": torch.full((1, 1), w),
        "bias_ih_l0": torch.zeros(1), "bias_hh_l0": torch.zeros(1),
    }  # fmt: skip
    x = torch.rand(t, n, 1, generator=torch.Generator().manual_seed(51)) + 0.1
    reply = student.run(probe_grad_norms, kind="rnn_relu", sizes=(1, 1), state=state, x=x)
    want = torch.tensor([math.sqrt(n) * w ** (t - 1 - k) for k in range(t)], dtype=torch.float64)
    _check(reply, want, "grad_norm_per_step on a 1-unit ReLU RNN (w_hh = 1.5, N = 4)")
    assert reply["x_unchanged"], "grad_norm_per_step changed its input x"


@points(1)
def test_lstm_matches_autograd(student):
    """An LSTM with the grader's weights: the norms equal those autograd gives here."""
    torch.manual_seed(52)
    model = nn.LSTM(3, 6)
    x = torch.randn(12, 5, 3)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    reply = student.run(probe_grad_norms, kind="lstm", sizes=(3, 6), state=state, x=x)
    xr = x.clone().requires_grad_(True)
    out, _ = model(xr)
    (grad,) = torch.autograd.grad(out[-1].sum(), xr)
    want = grad.double().flatten(1).norm(dim=1)
    _check(reply, want, "grad_norm_per_step on an LSTM(3, 6), x of shape (12, 5, 3)")
