"""Hidden tests for Part 1.4 `BatchNorm2d` (grade cell cw1_batchnorm_hidden, 15 points).

Reference: `nn.BatchNorm2d` with the same gamma, beta, eps and momentum. Training mode normalises
with the batch's biased variance and updates the running variance with the unbiased one; the
running mean and the running variance are marked separately, so one wrong update costs only its own.
"""

import torch
from torch import nn

from dlcourse.grading import points

GRADE_CELL = "cw1_batchnorm_hidden"
TOL = {"atol": 1e-4, "rtol": 1e-4}


def probe_bn(ns, xs, gamma, beta, train, eps=1e-5, momentum=0.1, running=None, grad_out=None):
    m = ns["BatchNorm2d"](gamma.shape[0], eps=eps, momentum=momentum)
    with torch.no_grad():
        m.gamma.copy_(gamma)
        m.beta.copy_(beta)
        if running is not None:
            m.running_mean.copy_(running[0])
            m.running_var.copy_(running[1])
    m.train(train)
    outs = [m(x) for x in xs[:-1]]
    last = xs[-1].clone().requires_grad_(grad_out is not None)
    outs.append(m(last))
    result = {"outs": outs, "running_mean": m.running_mean, "running_var": m.running_var}
    if grad_out is not None:
        outs[-1].backward(grad_out)
        result.update(dx=last.grad, dgamma=m.gamma.grad, dbeta=m.beta.grad)
    return result


def _reference(xs, gamma, beta, train, eps=1e-5, momentum=0.1, running=None, grad_out=None):
    m = nn.BatchNorm2d(gamma.shape[0], eps=eps, momentum=momentum)
    with torch.no_grad():
        m.weight.copy_(gamma)
        m.bias.copy_(beta)
        if running is not None:
            m.running_mean.copy_(running[0])
            m.running_var.copy_(running[1])
    m.train(train)
    outs = [m(x) for x in xs[:-1]]
    last = xs[-1].clone().requires_grad_(grad_out is not None)
    outs.append(m(last))
    result = {"outs": outs, "running_mean": m.running_mean, "running_var": m.running_var}
    if grad_out is not None:
        outs[-1].backward(grad_out)
        result.update(dx=last.grad, dgamma=m.weight.grad, dbeta=m.bias.grad)
    return result


def _batches(gen, shapes, scale=3.0, shift=2.0):
    return [torch.randn(*s, generator=gen) * scale + shift for s in shapes]


def _params(gen, c):
    return torch.randn(c, generator=gen), torch.randn(c, generator=gen)


def _both(student, **kw):
    return student.run(probe_bn, **kw), _reference(**kw)


def _assert_outputs(got, want, what):
    assert len(got["outs"]) == len(want["outs"])
    for g, w in zip(got["outs"], want["outs"], strict=True):
        assert isinstance(g, torch.Tensor), f"{what}: returned a {type(g).__name__}"
        assert g.shape == w.shape, (
            f"{what}: output shape {tuple(g.shape)}, expected {tuple(w.shape)}"
        )
        err = (g - w).abs().max().item()
        assert torch.allclose(g, w, **TOL), (
            f"{what}: outputs differ from torch's by up to {err:.3g}"
        )


@points(4)
def test_bn_train_output(student):
    """Training mode normalises with the batch mean and biased variance, scales and shifts."""
    gen = torch.Generator().manual_seed(31)
    for shape in [(4, 3, 5, 6), (1, 2, 7, 5), (8, 5, 3, 3)]:
        gamma, beta = _params(gen, shape[1])
        got, want = _both(student, xs=_batches(gen, [shape]), gamma=gamma, beta=beta, train=True)
        _assert_outputs(got, want, f"BatchNorm2d({shape[1]}) in training mode on {shape}")


@points(3)
def test_bn_train_gradients(student):
    """Training-mode gradients with respect to the input, gamma and beta match torch's."""
    gen = torch.Generator().manual_seed(32)
    gamma, beta = _params(gen, 3)
    kw = dict(xs=_batches(gen, [(4, 3, 5, 6)]), gamma=gamma, beta=beta, train=True,
              grad_out=torch.randn(4, 3, 5, 6, generator=gen))  # fmt: skip
    got, want = _both(student, **kw)
    for name, key in [("input", "dx"), ("gamma", "dgamma"), ("beta", "dbeta")]:
        assert got[key] is not None, f"no gradient reached {name}"
        assert torch.allclose(got[key], want[key], **TOL), (
            f"the {name} gradient differs from torch's"
        )


def _running(student, momentum):
    gen = torch.Generator().manual_seed(33)
    gamma, beta = _params(gen, 4)
    shapes = [(6, 4, 5, 5), (3, 4, 6, 4), (8, 4, 3, 5)]
    kw = dict(xs=_batches(gen, shapes), gamma=gamma, beta=beta, train=True, momentum=momentum)
    return _both(student, **kw)


@points(2)
def test_bn_running_mean(student):
    """The running mean after three training steps (momentum 0.1 and 0.3)."""
    for momentum in (0.1, 0.3):
        got, want = _running(student, momentum)
        assert torch.allclose(got["running_mean"], want["running_mean"], **TOL), (
            f"running_mean after 3 training steps with momentum {momentum} differs from torch's"
        )


@points(2)
def test_bn_running_var(student):
    """The running variance after three training steps uses the unbiased batch variance."""
    for momentum in (0.1, 0.3):
        got, want = _running(student, momentum)
        assert torch.allclose(got["running_var"], want["running_var"], **TOL), (
            f"running_var after 3 training steps with momentum {momentum} differs from torch's"
        )


@points(2)
def test_bn_eval(student):
    """Evaluation mode normalises with the running statistics and leaves them unchanged."""
    gen = torch.Generator().manual_seed(34)
    gamma, beta = _params(gen, 3)
    running = [torch.randn(3, generator=gen), torch.rand(3, generator=gen) + 0.5]
    kw = dict(xs=_batches(gen, [(4, 3, 5, 5), (1, 3, 6, 7)]), gamma=gamma, beta=beta,
              train=False, running=running)  # fmt: skip
    got, want = _both(student, **kw)
    _assert_outputs(got, want, "BatchNorm2d(3) in evaluation mode")
    for key, value in zip(("running_mean", "running_var"), running, strict=True):
        assert torch.allclose(got[key], value), f"evaluation mode changed {key}"


@points(1)
def test_bn_eps_and_momentum(student):
    """Other eps and momentum values: outputs in both modes and the running mean follow them."""
    gen = torch.Generator().manual_seed(35)
    gamma, beta = _params(gen, 3)
    xs = _batches(gen, [(4, 3, 5, 5), (4, 3, 5, 5)], scale=0.1)
    for train in (True, False):
        kw = dict(xs=xs, gamma=gamma, beta=beta, train=train, eps=1e-1, momentum=0.5,
                  running=[torch.zeros(3), torch.full((3,), 0.02)])  # fmt: skip
        got, want = _both(student, **kw)
        _assert_outputs(got, want, f"BatchNorm2d(3, eps=0.1, momentum=0.5), training={train}")
        assert torch.allclose(got["running_mean"], want["running_mean"], **TOL), (
            "running_mean does not follow the momentum argument"
        )


@points(1)
def test_bn_rules(student, check_rules):
    """No Python loops and no torch batch-norm layers or functions."""
    check_rules("BatchNorm2d", (3,), torch.randn(4, 3, 5, 5))
