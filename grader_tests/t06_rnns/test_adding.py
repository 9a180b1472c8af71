"""Hidden tests for Exercise 6, adding_problem, and Exercise 7, SequenceModel.

adding_problem is random, so it is marked by properties: shapes, one marker in each half,
targets equal to the marked sums, and that the generator (and only it) decides the data.
SequenceModel gets the grader's weights loaded by name (`rnn.*`, `head.*`) and must then give
the prediction computed here with torch's modules.
"""

import torch
import torch.nn as nn

from dlcourse.grading import grade_cell, points

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def probe_adding(ns, n, length, seed):
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    out = ns["adding_problem"](n, length, gen)
    if not isinstance(out, tuple | list) or len(out) != 2:
        return {"error": f"returned {type(out).__name__}, expected a pair (x, y)"}
    x, y = out
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        return {"error": "x and y must be tensors"}
    return {"x": x.detach(), "y": y.detach()}


def _data(student, n, length, seed):
    reply = student.run(probe_adding, n=n, length=length, seed=seed)
    what = f"adding_problem({n}, {length})"
    assert "error" not in reply, f"{what}: {reply.get('error')}"
    x, y = reply["x"], reply["y"]
    assert tuple(x.shape) == (n, length, 2), f"{what}: x has shape {tuple(x.shape)}"
    assert tuple(y.shape) == (n,), f"{what}: y has shape {tuple(y.shape)}, expected ({n},)"
    assert x.dtype == torch.float32 and y.dtype == torch.float32, (
        f"{what}: dtypes {x.dtype}, {y.dtype}, expected torch.float32"
    )
    return x, y


@grade_cell("t06_rnns_adding_check")
@points(1)
def test_adding_structure(student):
    """Shapes, one marker per half (odd length too), numbers in [0, 1), y = marked sum."""
    for n, length, seed in [(300, 20, 61), (200, 7, 62), (50, 2, 63)]:
        x, y = _data(student, n, length, seed)
        what = f"adding_problem({n}, {length})"
        v, m = x[..., 0], x[..., 1]
        half = length // 2
        assert bool(((m == 0) | (m == 1)).all()), f"{what}: markers other than 0 and 1"
        first, second = m[:, :half].sum(1), m[:, half:].sum(1)
        assert bool((first == 1).all()), (
            f"{what}: markers in positions [0, {half}) per sequence range "
            f"{int(first.min())}-{int(first.max())}, expected exactly 1"
        )
        assert bool((second == 1).all()), (
            f"{what}: markers in positions [{half}, {length}) per sequence range "
            f"{int(second.min())}-{int(second.max())}, expected exactly 1"
        )
        assert bool((v >= 0).all() and (v < 1).all()), f"{what}: numbers outside [0, 1)"
        err = (y - (v * m).sum(1)).abs().max().item()
        assert err < 1e-5, f"{what}: y differs from the sum of the marked numbers by {err:.3g}"


@grade_cell("t06_rnns_adding_check")
@points(1)
def test_adding_randomness(student):
    """The generator decides the data; positions and numbers are spread as specified."""
    a, _ = _data(student, 4000, 20, 64)
    b, _ = _data(student, 4000, 20, 64)
    c, _ = _data(student, 4000, 20, 65)
    assert torch.equal(a, b), "adding_problem: the same seeded generator gave different data"
    assert not torch.equal(a, c), "adding_problem: different seeds gave the same data"
    m = a[..., 1]
    for lo, hi in [(0, 10), (10, 20)]:
        counts = m[:, lo:hi].sum(0)
        assert bool((counts > 0.6 * 400).all()), (
            f"adding_problem(4000, 20): marker positions in [{lo}, {hi}) are not uniform "
            f"(counts per position {counts.int().tolist()}, about 400 each expected)"
        )
    mean = a[..., 0].mean().item()
    assert abs(mean - 0.5) < 0.02, f"adding_problem: numbers have mean {mean:.3f}, expected 0.5"


def probe_model(ns, cell, hidden, state, x):
    m = ns["SequenceModel"](cell, hidden_size=hidden)
    info = {
        "rnn": type(getattr(m, "rnn", None)).__name__,
        "batch_first": bool(getattr(getattr(m, "rnn", None), "batch_first", False)),
        "head": type(getattr(m, "head", None)).__name__,
        "n_params": sum(p.numel() for p in m.parameters()),
    }
    if state is not None:
        shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
        if shapes != {k: tuple(v.shape) for k, v in state.items()}:
            info["pred"] = f"parameters {shapes} do not take the grader's weights"
            return info
        m.load_state_dict(state)
    m.eval()
    with torch.no_grad():
        pred = m(x)
    info["pred"] = pred.detach() if isinstance(pred, torch.Tensor) else repr(pred)[:80]
    return info


def _reference(cell, hidden, seed):
    torch.manual_seed(seed)
    rnn, head = CELLS[cell](2, hidden, batch_first=True), nn.Linear(hidden, 1)
    state = {f"rnn.{k}": v for k, v in rnn.state_dict().items()}
    state |= {f"head.{k}": v for k, v in head.state_dict().items()}
    return rnn, head, state


@grade_cell("t06_rnns_model_check")
@points(1)
def test_model_modules(student):
    """self.rnn is the right nn class with batch_first=True, self.head an nn.Linear, and the
    parameter count is that of the two modules."""
    x = torch.rand(2, 5, 2)
    for cell, cls in CELLS.items():
        rnn, head, _ = _reference(cell, 6, 71)
        info = student.run(probe_model, cell=cell, hidden=6, state=None, x=x)
        what = f"SequenceModel({cell!r}, hidden_size=6)"
        assert info["rnn"] == cls.__name__, (
            f"{what}.rnn is a {info['rnn']}, expected nn.{cls.__name__}"
        )
        assert info["batch_first"], f"{what}.rnn does not have batch_first=True"
        assert info["head"] == "Linear", f"{what}.head is a {info['head']}, expected nn.Linear"
        want = sum(p.numel() for p in [*rnn.parameters(), *head.parameters()])
        assert info["n_params"] == want, f"{what}: {info['n_params']} parameters, expected {want}"


@grade_cell("t06_rnns_model_check")
@points(1)
def test_model_prediction(student):
    """With the grader's weights loaded, predictions equal head(rnn(x)[0][:, -1])."""
    x = torch.rand(4, 9, 2, generator=torch.Generator().manual_seed(72))
    for cell in CELLS:
        rnn, head, state = _reference(cell, 5, 73)
        info = student.run(probe_model, cell=cell, hidden=5, state=state, x=x)
        what = f"SequenceModel({cell!r}, hidden_size=5) on x of shape (4, 9, 2)"
        pred = info["pred"]
        assert isinstance(pred, torch.Tensor), f"{what} returned {pred}, not a tensor"
        with torch.no_grad():
            want = head(rnn(x)[0][:, -1]).squeeze(-1)
        assert tuple(pred.shape) == tuple(want.shape), (
            f"{what}: prediction of shape {tuple(pred.shape)}, expected {tuple(want.shape)}"
        )
        err = (pred - want).abs().max().item()
        assert err < 1e-5, f"{what}: prediction differs from the expected one by {err:.3g}"


@grade_cell("t06_rnns_model_check")
@points(1)
def test_model_any_length_and_batch(student):
    """A batch of one, a sequence of one step and one of 100 steps all give shape (N,)."""
    for n, length in [(1, 10), (3, 1), (2, 100)]:
        rnn, head, state = _reference("lstm", 4, 74)
        x = torch.rand(n, length, 2, generator=torch.Generator().manual_seed(75))
        info = student.run(probe_model, cell="lstm", hidden=4, state=state, x=x)
        pred = info["pred"]
        what = f"SequenceModel('lstm', hidden_size=4) on x of shape ({n}, {length}, 2)"
        assert isinstance(pred, torch.Tensor), f"{what} returned {pred}, not a tensor"
        assert tuple(pred.shape) == (n,), f"{what}: prediction of shape {tuple(pred.shape)}"
        with torch.no_grad():
            want = head(rnn(x)[0][:, -1]).squeeze(-1)
        err = (pred - want).abs().max().item()
        assert err < 1e-5, f"{what}: prediction differs from the expected one by {err:.3g}"
