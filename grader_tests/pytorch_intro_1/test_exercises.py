"""Hidden tests for exercises 1-6 of pytorch_intro_1: each test cell's points, from the grader.

The notebook's check cells show the student the same properties on their own inputs; these
tests call the student's functions in the sandboxed student process on inputs chosen here and
compare with values computed here (PyTorch's own functions, or numbers derivable by hand), so
nothing the student's kernel does can change a mark.
"""

import torch
import torch.nn.functional as F

from dlcourse.grading import grade_cell, points, public

N_PARAMS = 784 * 256 + 256 + 256 * 10 + 10  # MLP(hidden=256)


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def probe_call(ns, name, args):
    return ns[name](*args)


def probe_grad(ns, x):
    x = x.clone()
    g = ns["grad_of_f"](x)
    return {"grad": g, "x_grad_is_none": x.grad is None, "x_requires_grad": x.requires_grad}


def probe_mlp(ns, x):
    torch.manual_seed(0)
    model = ns["MLP"](hidden=256)
    with torch.no_grad():
        out = model(x)
    return {"out": out, "parameters": sum(p.numel() for p in model.parameters())}


def probe_loops(ns, x, y):
    from dlcourse.data import Split

    torch.manual_seed(0)
    model = ns["MLP"](hidden=256)
    toy = Split(x, y)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = ns["train_one_epoch"](model, toy, opt, batch_size=16)
    for _ in range(5):
        last = ns["train_one_epoch"](model, toy, opt, batch_size=16)
    acc = ns["evaluate"](model, toy)
    model.eval()
    with torch.no_grad():
        predictions = model(x).argmax(1)
    return {"first": float(first), "last": float(last), "acc": float(acc), "pred": predictions}


@grade_cell("intro1_standardize_test")
@points(1)
def test_standardize_columns(student):
    """standardize() gives every column mean 0 and standard deviation 1 (population)."""
    x = _x(50, 6) * torch.arange(1.0, 7.0) - 3
    z = student.run(probe_call, name="standardize", args=[x])
    want = (x - x.mean(0)) / x.std(0, unbiased=False)
    torch.testing.assert_close(z, want, atol=1e-5, rtol=1e-5)


@grade_cell("intro1_standardize_test")
@points(1)
def test_standardize_by_hand(student):
    """standardize([[1, 10], [3, 30]]) is [[-1, -1], [1, 1]]."""
    z = student.run(probe_call, name="standardize", args=[torch.tensor([[1.0, 10.0], [3.0, 30.0]])])
    torch.testing.assert_close(z, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))


@grade_cell("intro1_pairwise_test")
@points(2)
def test_pairwise_matches_cdist(student):
    """pairwise_sq_dists(a, b) equals torch.cdist(a, b) ** 2 (relative tolerance 1e-4)."""
    a, b = _x(9, 4, seed=1), _x(6, 4, seed=2)
    d = student.run(probe_call, name="pairwise_sq_dists", args=[a, b])
    torch.testing.assert_close(d, torch.cdist(a, b) ** 2, atol=1e-4, rtol=1e-4)


@grade_cell("intro1_pairwise_test")
@points(1)
def test_pairwise_by_hand(student):
    """A 3-4-5 triangle gives 25, and a point's distance to itself is 0."""
    d = student.run(
        probe_call, name="pairwise_sq_dists", args=[torch.zeros(1, 2), torch.tensor([[3.0, 4.0]])]
    )
    torch.testing.assert_close(d, torch.tensor([[25.0]]))
    a = _x(1, 10, seed=3)
    torch.testing.assert_close(
        student.run(probe_call, name="pairwise_sq_dists", args=[a, a]),
        torch.zeros(1, 1),
        atol=1e-5,
        rtol=0,
    )


@grade_cell("intro1_one_hot_test")
@points(1)
def test_one_hot_matches_torch(student):
    """one_hot(labels, 5) equals F.one_hot(labels, 5).float(), dtype included."""
    y = torch.tensor([4, 0, 3, 3, 1, 2])
    out = student.run(probe_call, name="one_hot", args=[y, 5])
    assert isinstance(out, torch.Tensor), f"one_hot returned a {type(out).__name__}"
    assert out.dtype == torch.float32, f"one_hot returned {out.dtype}, expected torch.float32"
    torch.testing.assert_close(out, F.one_hot(y, 5).float())


@grade_cell("intro1_one_hot_test")
@points(1)
def test_one_hot_last_class(student):
    """one_hot([9], 10) has its single 1 in the last column."""
    out = student.run(probe_call, name="one_hot", args=[torch.tensor([9]), 10])
    torch.testing.assert_close(out, torch.eye(10)[9:10])


@grade_cell("intro1_grad_test")
@points(2)
def test_grad_values(student):
    """grad_of_f(x) equals 3x^2 + cos x (tolerance 1e-5)."""
    x = torch.linspace(-3, 3, 13)
    out = student.run(probe_grad, x=x)
    torch.testing.assert_close(out["grad"], 3 * x**2 + torch.cos(x), atol=1e-5, rtol=1e-5)


@grade_cell("intro1_grad_test")
@points(1)
def test_grad_leaves_input_alone(student):
    """grad_of_f leaves its input without a gradient and without requires_grad."""
    out = student.run(probe_grad, x=torch.zeros(3))
    torch.testing.assert_close(out["grad"], torch.ones(3))
    assert out["x_grad_is_none"] and not out["x_requires_grad"], (
        "grad_of_f changed its input: work on x.detach().clone().requires_grad_(True)"
    )


@public
@grade_cell("intro1_mlp_test")
@points(1)
def test_mlp_shape_and_size(student):
    """MLP(hidden=256) maps (N, 1, 28, 28) to (N, 10) with 203,530 parameters."""
    out = student.run(probe_mlp, x=torch.rand(6, 1, 28, 28))
    assert tuple(out["out"].shape) == (6, 10), f"logits of shape {tuple(out['out'].shape)}"
    assert out["parameters"] == N_PARAMS, f"{out['parameters']:,} parameters, not {N_PARAMS:,}"


@grade_cell("intro1_mlp_test")
@points(1)
def test_mlp_returns_logits(student):
    """MLP's outputs are logits, not softmax probabilities."""
    out = student.run(probe_mlp, x=torch.rand(6, 1, 28, 28))["out"]
    probabilities = (out >= 0).all() and torch.allclose(out.sum(1), torch.ones(6), atol=1e-4)
    assert not probabilities, "the rows are probabilities: forward must not apply a softmax"


@grade_cell("intro1_loops_test")
@points(2)
def test_train_one_epoch_lowers_the_loss(student):
    """Five more epochs of train_one_epoch lower the loss on a small fixed problem."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    out = student.run(probe_loops, x=x, y=y)
    assert out["last"] < out["first"], (
        f"the mean training loss went from {out['first']:.3f} to {out['last']:.3f}"
    )


@grade_cell("intro1_loops_test")
@points(1)
def test_evaluate_counts_correct_predictions(student):
    """evaluate(model, split) is the fraction of correct predictions (exact)."""
    g = torch.Generator().manual_seed(6)
    x, y = torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    out = student.run(probe_loops, x=x, y=y)
    expected = (out["pred"] == y).float().mean().item()
    assert abs(out["acc"] - expected) < 1e-9, (
        f"evaluate gave {out['acc']:.4f}; the model's predictions are right for {expected:.4f}"
    )
