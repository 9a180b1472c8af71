"""Hidden tests for T04 batch normalisation: batch_norm_fc, batch_norm_conv, BatchNorm, SmallCNN,
batch_mean_std and scale_weights.

References are PyTorch's own (`F.batch_norm`, `nn.BatchNorm1d/2d`) on inputs the notebook's
checks do not use, or values derived by hand (sigma / sqrt(B) for the spread of batch means, the
factor^L by which rescaled bias-free ReLU layers scale their output). Exercises 1-3 are about
writing batch-norm from tensor operations, so every probe records, with a TorchDispatchMode,
whether one of PyTorch's normalisation kernels ran while the student's code did (however it was
reached: F.batch_norm, a layer, an alias, torch.ops.aten), and the source of the definition is
read for their names too; a test fails when either finds one.
"""

import ast

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close

TOL = {"atol": 1e-4, "rtol": 1e-4}
FORBIDDEN = {
    "batch_norm", "native_batch_norm", "layer_norm", "instance_norm", "group_norm",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm1d", "LazyBatchNorm2d",
    "LayerNorm", "InstanceNorm1d", "InstanceNorm2d", "GroupNorm", "SyncBatchNorm",
}  # fmt: skip
RULE = "exercises 1-3 are to be written with tensor operations, not PyTorch's normalisation"


def probe_fn(ns, name, x, gamma, beta, eps=None, grad_out=None):
    """ns[name](x, gamma, beta[, eps]), recording every normalisation kernel that runs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    norms = ("batch_norm", "layer_norm", "instance_norm", "group_norm")
    called = set()

    class Recorder(TorchDispatchMode):  # sees each aten op, however the code reached it
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if any(n in str(func) for n in norms):
                called.add(str(func))
            return func(*args, **(kwargs or {}))

    need_grad = grad_out is not None
    x, gamma, beta = (t.clone().requires_grad_(need_grad) for t in (x, gamma, beta))
    with Recorder():
        out = ns[name](x, gamma, beta) if eps is None else ns[name](x, gamma, beta, eps=eps)
    result = {"out": out, "called": sorted(called)}
    if need_grad and isinstance(out, torch.Tensor) and out.shape == grad_out.shape:
        out.backward(grad_out)
        result.update(dx=x.grad, dgamma=gamma.grad, dbeta=beta.grad)
    return result


def probe_module(ns, num_features, gamma, beta, train_batches, eval_batches, kwargs, running=None):
    """BatchNorm(num_features, **kwargs): initial state, training steps, then evaluation (with
    the running statistics set to `running` first, when given), recording normalisation kernels."""
    from torch.utils._python_dispatch import TorchDispatchMode

    norms = ("batch_norm", "layer_norm", "instance_norm", "group_norm")
    called = set()

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if any(n in str(func) for n in norms):
                called.add(str(func))
            return func(*args, **(kwargs or {}))

    m = ns["BatchNorm"](num_features, **kwargs)

    def tensor_or_none(obj, attr):
        value = getattr(obj, attr, None)
        return value.detach().clone() if isinstance(value, torch.Tensor) else None

    init = {k: tensor_or_none(m, k) for k in ("gamma", "beta", "running_mean", "running_var")}
    result = {
        "init": init,
        "params": [n for n, _ in m.named_parameters()],
        "state": sorted(m.state_dict().keys()),
    }
    with torch.no_grad():
        m.gamma.copy_(gamma)
        m.beta.copy_(beta)
    m.train()
    with Recorder():
        result["train_outs"] = [m(x) for x in train_batches]
    result["after_train"] = [m.running_mean.clone(), m.running_var.clone()]
    if running is not None:
        with torch.no_grad():
            m.running_mean.copy_(running[0])
            m.running_var.copy_(running[1])
    result["before_eval"] = [m.running_mean.clone(), m.running_var.clone()]
    m.eval()
    with Recorder():
        result["eval_outs"] = [m(x) for x in eval_batches]
    result["after_eval"] = [m.running_mean.clone(), m.running_var.clone()]
    result["called"] = sorted(called)
    return result


def probe_cnn(ns, batch_norm, x, companions):
    """SmallCNN(batch_norm): sizes, layers, and whether an image's output depends on its batch."""
    torch.manual_seed(0)
    m = ns["SmallCNN"](batch_norm=batch_norm)
    info = {
        "params": sum(p.numel() for p in m.parameters()),
        "bn_layers": sum("batchnorm" in type(layer).__name__.lower() for layer in m.modules()),
    }
    m.train()
    with torch.no_grad():
        info["out"] = m(x)
        info["first_a"] = m(x)[0]
        info["first_b"] = m(torch.cat([x[:1], companions]))[0]
        m.eval()
        info["eval_one"] = m(x[:1])
    return info


def _rule_violations(source):
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN:
            found.append(f"`.{node.attr}`")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN:
            found.append(f"`{node.id}`")
    return sorted(set(found))


def _check_rules(student, name, called):
    found = _rule_violations(student.source(name))
    assert not found, f"{name} uses {', '.join(found)}: {RULE}"
    assert not called, f"{name} runs PyTorch's {', '.join(called)}: {RULE}"


def _assert_tensor(got, want, what, tol=TOL):
    close(got, want, what, **tol)


def _inputs(gen, shape, scale=2.0, shift=1.0):
    c = shape[1]
    x = torch.randn(*shape, generator=gen) * scale + shift
    return x, torch.rand(c, generator=gen) + 0.5, torch.randn(c, generator=gen)


def _reference(x, gamma, beta, eps=1e-5, grad_out=None):
    x, gamma, beta = (t.clone().requires_grad_(grad_out is not None) for t in (x, gamma, beta))
    out = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
    if grad_out is None:
        return {"out": out.detach()}
    out.backward(grad_out)
    return {"out": out.detach(), "dx": x.grad, "dgamma": gamma.grad, "dbeta": beta.grad}


def _compare(student, name, x, gamma, beta, eps=None):
    what = f"{name}(x of shape {tuple(x.shape)}{'' if eps is None else f', eps={eps:g}'})"
    got = student.run(probe_fn, name=name, x=x, gamma=gamma, beta=beta, eps=eps)
    _check_rules(student, name, got["called"])
    _assert_tensor(
        got["out"], _reference(x, gamma, beta, 1e-5 if eps is None else eps)["out"], what
    )


def _gradients(student, name, shape, seed):
    gen = torch.Generator().manual_seed(seed)
    x, gamma, beta = _inputs(gen, shape)
    grad_out = torch.randn(*shape, generator=gen)
    got = student.run(probe_fn, name=name, x=x, gamma=gamma, beta=beta, grad_out=grad_out)
    _check_rules(student, name, got["called"])
    want = _reference(x, gamma, beta, grad_out=grad_out)
    _assert_tensor(got["out"], want["out"], f"{name} on {shape}")
    for label, key in [("x", "dx"), ("gamma", "dgamma"), ("beta", "dbeta")]:
        assert got.get(key) is not None, f"{name}: no gradient reached {label}"
        _assert_tensor(got[key], want[key], f"{name}: the gradient with respect to {label}")


# Exercise 1: batch_norm_fc ------------------------------------------------------------------


@grade_cell("t04_batchnorm_fc_check")
@points(1)
def test_fc_outputs(student):
    """Outputs for several (N, D) shapes, scales and eps values match F.batch_norm."""
    gen = torch.Generator().manual_seed(11)
    for shape, eps in [((16, 3), None), ((5, 8), None), ((40, 2), 1e-3), ((10, 4), 0.5)]:
        _compare(student, "batch_norm_fc", *_inputs(gen, shape), eps=eps)
    x, gamma, beta = _inputs(gen, (12, 3), scale=0.01)  # small variance: eps matters
    _compare(student, "batch_norm_fc", x, gamma, beta, eps=1e-3)


@grade_cell("t04_batchnorm_fc_check")
@points(1)
def test_fc_biased_variance_on_tiny_batches(student):
    """Batches of two and three rows: the biased variance (an unbiased one differs most here)."""
    gen = torch.Generator().manual_seed(12)
    for shape in [(2, 4), (3, 5)]:
        _compare(student, "batch_norm_fc", *_inputs(gen, shape))
    # Two rows: the biased variance makes every entry exactly -1 or +1 (eps is negligible).
    x = torch.tensor([[1.0, -2.0], [3.0, 2.0]])
    got = student.run(probe_fn, name="batch_norm_fc", x=x, gamma=torch.ones(2),
                      beta=torch.zeros(2), eps=1e-10)  # fmt: skip
    _check_rules(student, "batch_norm_fc", got["called"])
    want = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    _assert_tensor(got["out"], want, "batch_norm_fc([[1, -2], [3, 2]], gamma=1, beta=0)")


@grade_cell("t04_batchnorm_fc_check")
@points(1)
def test_fc_gradients(student):
    """Gradients with respect to x, gamma and beta match PyTorch's, through the statistics."""
    _gradients(student, "batch_norm_fc", (7, 3), seed=13)


# Exercise 2: batch_norm_conv ----------------------------------------------------------------


@grade_cell("t04_batchnorm_conv_check")
@points(1)
def test_conv_outputs(student):
    """Outputs for several (N, C, H, W) shapes and eps values match F.batch_norm."""
    gen = torch.Generator().manual_seed(21)
    for shape, eps in [((4, 3, 5, 5), None), ((2, 6, 3, 7), None), ((5, 2, 4, 4), 0.5)]:
        _compare(student, "batch_norm_conv", *_inputs(gen, shape), eps=eps)


@grade_cell("t04_batchnorm_conv_check")
@points(1)
def test_conv_statistics_over_batch_and_positions(student):
    """One image, and inputs whose positions differ: statistics per channel over (N, H, W)."""
    gen = torch.Generator().manual_seed(22)
    _compare(student, "batch_norm_conv", *_inputs(gen, (1, 3, 6, 4)))
    x, gamma, beta = _inputs(gen, (6, 2, 5, 3))
    x = x + torch.arange(15.0).view(1, 1, 5, 3)  # every position has its own mean
    _compare(student, "batch_norm_conv", x, gamma, beta)


@grade_cell("t04_batchnorm_conv_check")
@points(1)
def test_conv_gradients(student):
    """Gradients with respect to x, gamma and beta match PyTorch's."""
    _gradients(student, "batch_norm_conv", (3, 2, 4, 5), seed=23)


# Exercise 3: BatchNorm ----------------------------------------------------------------------


def _module_case(student, shapes, kwargs, seed, n_eval=2, running=None):
    gen = torch.Generator().manual_seed(seed)
    c = shapes[0][1]
    gamma, beta = torch.rand(c, generator=gen) + 0.5, torch.randn(c, generator=gen)
    train = [torch.randn(*s, generator=gen) * 3 + 2 for s in shapes]
    evals = [torch.randn(*shapes[0], generator=gen) * 2 for _ in range(n_eval)]
    got = student.run(probe_module, num_features=c, gamma=gamma, beta=beta, train_batches=train,
                      eval_batches=evals, kwargs=kwargs, running=running)  # fmt: skip
    _check_rules(student, "BatchNorm", got["called"])
    ref = (nn.BatchNorm1d if len(shapes[0]) == 2 else nn.BatchNorm2d)(c, **kwargs)
    with torch.no_grad():
        ref.weight.copy_(gamma)
        ref.bias.copy_(beta)
        ref.train()
        want = {"train_outs": [ref(x) for x in train]}
        want["after_train"] = [ref.running_mean.clone(), ref.running_var.clone()]
        if running is not None:
            ref.running_mean.copy_(running[0])
            ref.running_var.copy_(running[1])
        ref.eval()
        want["eval_outs"] = [ref(x) for x in evals]
    return got, want


def _describe(shapes, kwargs):
    args = "".join(f", {k}={v}" for k, v in kwargs.items())
    return f"BatchNorm({shapes[0][1]}{args}) after {len(shapes)} training batches of {shapes[0]}"


CASES = [
    ([(10, 4), (6, 4), (12, 4)], {}),
    ([(3, 2, 5, 4), (2, 2, 6, 6)], {"momentum": 0.3}),
    ([(8, 3), (8, 3)], {"momentum": 0.5, "eps": 0.1}),
]


@grade_cell("t04_batchnorm_class_check")
@points(1)
def test_module_training_outputs(student):
    """Training-mode outputs match nn.BatchNorm1d / nn.BatchNorm2d step by step."""
    for i, (shapes, kwargs) in enumerate(CASES):
        got, want = _module_case(student, shapes, kwargs, seed=31 + i)
        for step, (g, w) in enumerate(zip(got["train_outs"], want["train_outs"], strict=True)):
            _assert_tensor(g, w, f"{_describe(shapes, kwargs)}: the output of step {step + 1}")


@grade_cell("t04_batchnorm_class_check")
@points(1)
def test_module_running_mean(student):
    """The running mean after several training steps, for several momenta."""
    for i, (shapes, kwargs) in enumerate(CASES):
        got, want = _module_case(student, shapes, kwargs, seed=31 + i)
        _assert_tensor(got["after_train"][0], want["after_train"][0],
                       f"{_describe(shapes, kwargs)}: running_mean")  # fmt: skip


@grade_cell("t04_batchnorm_class_check")
@points(1)
def test_module_running_var(student):
    """The running variance is updated with the unbiased batch variance."""
    for i, (shapes, kwargs) in enumerate(CASES):
        got, want = _module_case(student, shapes, kwargs, seed=31 + i)
        _assert_tensor(got["after_train"][1], want["after_train"][1],
                       f"{_describe(shapes, kwargs)}: running_var")  # fmt: skip


@grade_cell("t04_batchnorm_class_check")
@points(1)
def test_module_eval_mode_and_state(student):
    """Evaluation mode uses the running statistics and leaves them alone; initial values;
    gamma and beta are the only parameters and the running statistics are in the state_dict."""
    # The running statistics are set before evaluating, so a wrong update costs only its test.
    running = [torch.tensor([0.5, -1.0, 0.0, 2.0, 0.3]), torch.tensor([0.5, 2.0, 1.0, 4.0, 0.1])]
    got, want = _module_case(student, [(9, 5), (7, 5)], {"momentum": 0.2}, seed=41,
                             running=running)  # fmt: skip
    init = got["init"]
    expected_init = {"gamma": torch.ones(5), "beta": torch.zeros(5),
                     "running_mean": torch.zeros(5), "running_var": torch.ones(5)}  # fmt: skip
    for key, value in expected_init.items():
        assert init[key] is not None, f"BatchNorm(5) has no tensor attribute `{key}`"
        _assert_tensor(init[key], value, f"BatchNorm(5).{key} when created")
    assert sorted(got["params"]) == ["beta", "gamma"], (
        f"BatchNorm's parameters are {got['params']}; expected exactly gamma and beta "
        "(the running statistics are buffers)"
    )
    missing = {"running_mean", "running_var"} - set(got["state"])
    assert not missing, f"the state_dict lacks {sorted(missing)}: register them as buffers"
    for i, (g, w) in enumerate(zip(got["eval_outs"], want["eval_outs"], strict=True)):
        _assert_tensor(g, w, f"BatchNorm(5) in evaluation mode, batch {i + 1}")
    for label, before, after in zip(("running_mean", "running_var"), got["before_eval"],
                                    got["after_eval"], strict=True):  # fmt: skip
        assert torch.equal(before, after), f"evaluation mode changed {label}"


def probe_running_history(ns, num_features, batches):
    """Training steps on inputs that require gradients (as a hidden layer's input does): does
    autograd history reach the running statistics?"""
    m = ns["BatchNorm"](num_features)
    m.train()
    for x in batches:
        m(x.clone().requires_grad_(True))
    found = {}
    for name in ("running_mean", "running_var"):
        t = getattr(m, name, None)
        found[name] = isinstance(t, torch.Tensor) and (t.requires_grad or t.grad_fn is not None)
    return found


@grade_cell("t04_batchnorm_class_check")
@points(1)
def test_module_running_statistics_without_autograd(student):
    """After training steps on inputs that require gradients, the running statistics carry no
    autograd history (updated under torch.no_grad() or from detached statistics)."""
    gen = torch.Generator().manual_seed(42)
    for shape in [(6, 3), (2, 4, 3, 3)]:
        batches = [torch.randn(*shape, generator=gen) for _ in range(2)]
        got = student.run(probe_running_history, num_features=shape[1], batches=batches)
        attached = [name for name, has in got.items() if has]
        assert not attached, (
            f"BatchNorm({shape[1]}) after training steps on inputs of shape {shape} that require "
            f"gradients: {' and '.join(attached)} carry autograd history; update the running "
            "statistics inside torch.no_grad() (or from detached statistics)"
        )


# Exercise 4: SmallCNN -----------------------------------------------------------------------

EXPECTED_PARAMS = {True: 72 + 16 + 1152 + 32 + 7850, False: 80 + 1168 + 7850}


def _cnn(student, batch_norm, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(6, 1, 28, 28, generator=gen)
    companions = torch.rand(5, 1, 28, 28, generator=gen) * 0.5 + 0.5
    return student.run(probe_cnn, batch_norm=batch_norm, x=x, companions=companions)


@grade_cell("t04_batchnorm_cnn_check")
@points(1)
def test_cnn_structure(student):
    """Logits of shape (N, 10); 9,122 / 9,098 parameters; two batch-norm layers or none."""
    for bn_on in (True, False):
        info = _cnn(student, bn_on, seed=51)
        what = f"SmallCNN(batch_norm={bn_on})"
        out = info["out"]
        assert isinstance(out, torch.Tensor), f"{what} returned a {type(out).__name__}"
        assert tuple(out.shape) == (6, 10), f"{what}: logits of shape {tuple(out.shape)}"
        assert info["params"] == EXPECTED_PARAMS[bn_on], (
            f"{what} has {info['params']:,} parameters, expected {EXPECTED_PARAMS[bn_on]:,}"
        )
        assert info["bn_layers"] == (2 if bn_on else 0), (
            f"{what} has {info['bn_layers']} batch-norm layers, expected {2 if bn_on else 0}"
        )


@grade_cell("t04_batchnorm_cnn_check")
@points(1)
def test_cnn_uses_batch_norm_in_forward(student):
    """In training mode an image's logits depend on its batch exactly when batch-norm is on;
    in evaluation mode a batch of one image works."""
    for bn_on in (True, False):
        info = _cnn(student, bn_on, seed=52)
        what = f"SmallCNN(batch_norm={bn_on})"
        a, b, one = info["first_a"], info["first_b"], info["eval_one"]
        assert all(isinstance(t, torch.Tensor) for t in (a, b, one)), f"{what} returned no tensor"
        assert tuple(one.shape) == (1, 10), f"{what} in eval mode on one image: {tuple(one.shape)}"
        diff = (a - b).abs().max().item()
        if bn_on:
            assert diff > 1e-4, (
                f"{what} in training mode: an image's logits do not change with its batch "
                f"(largest difference {diff:.2g}); is batch-norm used in forward?"
            )
        else:
            assert diff < 1e-5, (
                f"{what} in training mode: an image's logits change with its batch by {diff:.2g}"
            )


# Exercise 5: batch_mean_std -----------------------------------------------------------------


def probe_batch_noise(ns, x, batch_size, trials, seeds):
    """batch_mean_std with a fresh generator for each seed, after reseeding the global RNG
    differently each time (the result must not depend on it)."""
    out = []
    for k, seed in enumerate(seeds):
        torch.manual_seed(100 + k)
        got = ns["batch_mean_std"](x, batch_size, trials, torch.Generator().manual_seed(seed))
        out.append(
            got.detach().cpu() if isinstance(got, torch.Tensor) else f"a {type(got).__name__}"
        )
    return out


def _noise(student, x, batch_size, trials, seeds):
    what = f"batch_mean_std(x of shape {tuple(x.shape)}, {batch_size}, {trials}, generator)"
    got = student.run(probe_batch_noise, x=x, batch_size=batch_size, trials=trials, seeds=seeds)
    for g in got:
        assert isinstance(g, torch.Tensor), f"{what} returned {g}, not a tensor"
        assert tuple(g.shape) == (x.shape[1],), (
            f"{what}: shape {tuple(g.shape)}, expected ({x.shape[1]},)"
        )
    return got, what


@grade_cell("t04_batchnorm_batch_noise_check")
@points(1)
def test_batch_noise_follows_sigma_over_sqrt_b(student):
    """The spread of the batch means is sigma / sqrt(B) (within 6%, 5,000 trials) for batch
    sizes 1 to 100, sigma being the features' standard deviation over all rows."""
    gen = torch.Generator().manual_seed(51)
    x = torch.randn(20_000, 2, generator=gen) * torch.tensor([3.0, 0.2]) - 1.0
    x = torch.cat([x, torch.rand(20_000, 1, generator=gen)], dim=1)  # a uniform feature too
    sigma = x.double().std(dim=0, unbiased=False)
    for b in (1, 9, 100):
        (got,), what = _noise(student, x, b, 5000, [b])
        close(got.double(), sigma / b**0.5, what, "sigma / sqrt(B)", atol=0.0, rtol=0.06)


@grade_cell("t04_batchnorm_batch_noise_check")
@points(1)
def test_batch_noise_uses_the_generator(student):
    """The same seed gives the same result whatever the global RNG; other seeds give other
    draws (batches drawn per trial from the generator)."""
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(52))
    (a, b, c), what = _noise(student, x, 5, 200, [7, 7, 8])
    assert torch.equal(a, b), (
        f"{what}: the same generator seed gave different results after the global RNG was "
        "reseeded; draw the batches from `generator`"
    )
    assert not torch.equal(a, c), f"{what}: seeds 7 and 8 gave the same result"
    assert (a > 0).all(), f"{what}: a spread of 0 for random data; is each trial a new batch?"


# Exercise 6: scale_weights ------------------------------------------------------------------


def probe_scale(ns, kind, state, factor, x):
    """scale_weights on a model the grader describes (its state_dict given): what the copy and
    the original hold afterwards, and both models' outputs (training mode)."""

    def stack(bn_on, bias):
        def block(cin, cout, k):
            return [nn.Conv2d(cin, cout, k, bias=bias), *([nn.BatchNorm2d(cout)] if bn_on else []),
                    nn.ReLU()]  # fmt: skip

        return nn.Sequential(*block(1, 3, 3), *block(3, 5, 2), nn.Flatten(),
                             nn.Linear(5 * 9 * 9, 6, bias=bias))  # fmt: skip

    model = stack(**kind)
    model.load_state_dict(state)
    model.train()
    copy_ = ns["scale_weights"](model, factor)
    result = {"is_module": isinstance(copy_, nn.Module), "same_object": copy_ is model}
    if not result["is_module"]:
        return result
    result["copy"] = {k: v.detach().clone() for k, v in copy_.state_dict().items()}
    result["original"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        result["ratio"] = (copy_.train()(x).norm() / model.train()(x).norm()).item()
    return result


def _scaled(student, kind, factor, seed):
    torch.manual_seed(seed)
    bn_on, bias = kind["bn_on"], kind["bias"]
    ref = nn.Sequential(
        nn.Conv2d(1, 3, 3, bias=bias), *([nn.BatchNorm2d(3)] if bn_on else []), nn.ReLU(),
        nn.Conv2d(3, 5, 2, bias=bias), *([nn.BatchNorm2d(5)] if bn_on else []), nn.ReLU(),
        nn.Flatten(), nn.Linear(5 * 9 * 9, 6, bias=bias),
    )  # fmt: skip
    with torch.no_grad():  # batch-norm parameters away from 1 and 0, so scaling them shows
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
                m.running_mean.normal_()
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    x = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(seed))
    got = student.run(probe_scale, kind=kind, state=state, factor=factor, x=x)
    what = (f"scale_weights(a {'batch-norm' if bn_on else 'plain'} stack"
            f"{'' if bias else ' without biases'}, {factor:g})")  # fmt: skip
    assert got["is_module"], f"{what} did not return a module"
    assert not got["same_object"], f"{what} returned the model itself; return a copy"
    return got, state, what


@grade_cell("t04_batchnorm_scale_weights_check")
@points(1)
def test_scale_weights_scales_only_conv_and_linear_weights(student):
    """Conv and linear weights times the factor; biases, batch-norm parameters and buffers as
    they were; the original model unchanged."""
    for kind, factor in [
        ({"bn_on": True, "bias": True}, 2.5),
        ({"bn_on": False, "bias": True}, 0.3),
    ]:
        got, state, what = _scaled(student, kind, factor, seed=61)
        for key, value in state.items():
            scaled = key.endswith("weight") and value.dim() > 1
            want = value * factor if scaled else value
            source = f"{factor:g} x the original" if scaled else "the original (unscaled)"
            close(got["copy"][key], want, f"{what}: {key} of the copy", source, atol=1e-6,
                  rtol=1e-6)  # fmt: skip
            assert torch.equal(got["original"][key], value), f"{what} changed the original's {key}"


@grade_cell("t04_batchnorm_scale_weights_check")
@points(1)
def test_scale_weights_output_ratio(student):
    """By hand: three bias-free ReLU layers scale the output by factor^3; with batch-norm after
    both convolutions (training mode) only the linear layer's factor is left."""
    for kind, factor, ratio in [({"bn_on": False, "bias": False}, 2.0, 8.0),
                                ({"bn_on": False, "bias": False}, 0.5, 0.125),
                                ({"bn_on": True, "bias": False}, 4.0, 4.0)]:  # fmt: skip
        got, _, what = _scaled(student, kind, factor, seed=62)
        close(got["ratio"], ratio, f"{what}: |output of the copy| / |output|", "by hand",
              atol=0.0, rtol=2e-3)  # fmt: skip
