"""Hidden tests for the from-scratch RNN (Exercises 1-4: rnn_cell, rnn_forward, deep_rnn_forward,
birnn_forward), each in its own grade cell.

The grader builds `nn.RNN` / `nn.RNNCell` modules with seeds and sizes of its own, sends their
weights to the student's function and compares the result with the module's. Every call runs
with torch's recurrent layers and kernels spied on: an answer that calls `nn.RNNCell`,
`nn.RNN` or `torch.rnn_tanh*` gets no marks for that test, and the message says so.
"""

import ast

import torch
import torch.nn as nn

from dlcourse import notebook
from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close

TOL = {"atol": 1e-5, "rtol": 1e-5}
# Low-level names that reach torch's fused RNN kernels without going through a module.
KERNEL_NAMES = ("rnn_tanh", "rnn_relu", "_VariableFunctions", "_VF")


def probe_scratch(ns, name, args, grad_outs=None):
    """ns[name](*args) with torch's recurrent modules and kernels spied on.

    With `grad_outs` (one tensor or None per output), every tensor argument is a leaf and the
    gradients of sum(output * grad_out) come back in the order the tensors appear in `args`.
    """
    called, saved = [], []

    def spy(owner, attr):
        original = getattr(owner, attr)

        def wrapper(*a, **k):
            called.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            return original(*a, **k)

        saved.append((owner, attr, original))
        setattr(owner, attr, wrapper)

    for cls in (nn.RNNBase, nn.RNN, nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell, nn.GRUCell):
        if "forward" in vars(cls):
            spy(cls, "forward")
    kernels = ("rnn_tanh", "rnn_tanh_cell", "rnn_relu", "rnn_relu_cell", "lstm", "lstm_cell",
               "gru", "gru_cell")  # fmt: skip
    for owner in (torch, torch._VF):
        for attr in kernels:
            if hasattr(owner, attr):
                spy(owner, attr)

    leaves = []

    def prepare(v):
        if isinstance(v, torch.Tensor):
            t = v.detach().clone().requires_grad_(grad_outs is not None)
            leaves.append(t)
            return t
        if isinstance(v, list | tuple):
            return type(v)(prepare(u) for u in v)
        return v

    try:
        out = ns[name](*prepare(list(args)))
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)
    outs = out if isinstance(out, tuple | list) else (out,)
    if grad_outs is None:
        return {"out": list(outs), "called": called, "grads": None}
    total = sum((o * g).sum() for o, g in zip(outs, grad_outs, strict=False) if g is not None)
    grads = torch.autograd.grad(total, leaves, allow_unused=True)
    return {"out": [o.detach() for o in outs], "called": called, "grads": list(grads)}


def _weights(seq):
    return [tuple(t.detach().clone() for t in w) for w in seq]


def _assert_scratch(reply, what):
    assert isinstance(reply, dict) and isinstance(reply.get("out"), list), (
        f"{what}: the probe got back {type(reply).__name__}"
    )
    used = sorted(set(reply["called"]))
    assert not used, (
        f"{what} calls torch's recurrent layers ({', '.join(used)}); write it with tensor "
        "operations (matrix products, tanh)"
    )


def _assert_close(got, want, what):
    close(got, want, what, "torch's", **TOL)


def _assert_grads(reply, want, labels, what):
    got = reply.get("grads")
    assert isinstance(got, list) and len(got) == len(labels), f"{what}: no gradients came back"
    for label, g, exp in zip(labels, got, want, strict=True):
        assert g is not None, f"{what}: no gradient reaches {label}"
        _assert_close(g, exp, f"{what}: the gradient w.r.t. {label}")


def _outputs(reply, n, what):
    _assert_scratch(reply, what)
    assert len(reply["out"]) == n, f"{what} returned {len(reply['out'])} values, expected {n}"
    return reply["out"]


def _reference_grads(fn, args, grad_outs):
    """The same gradients as probe_scratch, for a reference function of the same arguments."""
    leaves = []

    def prepare(v):
        if isinstance(v, torch.Tensor):
            t = v.detach().clone().requires_grad_(True)
            leaves.append(t)
            return t
        if isinstance(v, list | tuple):
            return type(v)(prepare(u) for u in v)
        return v

    outs = fn(*prepare(list(args)))
    total = sum((o * g).sum() for o, g in zip(outs, grad_outs, strict=False) if g is not None)
    return torch.autograd.grad(total, leaves, allow_unused=True)


def _rnn_with(weights, input_size, hidden, num_layers=1, bidirectional=False):
    """A function of (x, h0, *weights) that runs nn.RNN with exactly these weight tensors."""
    rnn = nn.RNN(input_size, hidden, num_layers=num_layers, bidirectional=bidirectional)
    names = [n for layer in rnn._all_weights for n in layer]

    def run(x, h0, flat):
        params = dict(zip(names, flat, strict=True))
        return torch.func.functional_call(rnn, params, (x,) if h0 is None else (x, h0))

    return run


def _run(student, name, args, grad_outs=None):
    """probe_scratch for `name`, after the static check that no definition in the notebook
    names torch's fused RNN kernels (which the probe's spies cannot see when reached through
    torch._C)."""
    found = _static_kernels(student)
    assert not found, (
        f"the notebook's definitions use torch's RNN kernels directly ({', '.join(found)}); "
        f"write {name} with tensor operations"
    )
    return student.run(probe_scratch, name=name, args=args, grad_outs=grad_outs)


def _static_kernels(student):
    """Names of torch's fused RNN kernels anywhere in the notebook's definitions."""
    src, _ = notebook.definitions(student.path / student.spec.notebook)
    found = set()
    for node in ast.walk(ast.parse(src)):
        text = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        if isinstance(text, str) and any(k in text for k in KERNEL_NAMES):
            found.add(text)
    return sorted(found)


# ---------------------------------------------------------------------------- Exercise 1


@grade_cell("t06_rnns_rnn_cell_check")
@points(1)
def test_cell_matches_rnncell(student):
    """rnn_cell equals nn.RNNCell with the same weights, for several sizes (no torch RNN used)."""
    for seed, n, i, h in [(11, 2, 3, 4), (12, 5, 1, 7), (13, 1, 6, 2)]:
        torch.manual_seed(seed)
        cell = nn.RNNCell(i, h)
        x, h0 = torch.randn(n, i), torch.randn(n, h)
        w = _weights([(cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)])[0]
        reply = _run(student, name="rnn_cell", args=[x, h0, *w])
        what = f"rnn_cell with x {tuple(x.shape)}, h {tuple(h0.shape)}"
        (got,) = _outputs(reply, 1, what)
        with torch.no_grad():
            _assert_close(got, cell(x, h0), what + " vs nn.RNNCell")


@grade_cell("t06_rnns_rnn_cell_check")
@points(1)
def test_cell_gradients(student):
    """Gradients through rnn_cell (w.r.t. x, h and all four weights) match nn.RNNCell's."""
    torch.manual_seed(14)
    cell = nn.RNNCell(3, 4)
    x, h0 = torch.randn(3, 3), torch.randn(3, 4)
    w = _weights([(cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)])[0]
    g = torch.randn(3, 4)
    reply = _run(student, name="rnn_cell", args=[x, h0, *w], grad_outs=[g])
    _outputs(reply, 1, "rnn_cell")

    def ref(x, h, w_ih, w_hh, b_ih, b_hh):
        params = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
        return (torch.func.functional_call(cell, params, (x, h)),)

    want = _reference_grads(ref, [x, h0, *w], [g])
    _assert_grads(reply, want, ["x", "h", "w_ih", "w_hh", "b_ih", "b_hh"], "rnn_cell")


# ---------------------------------------------------------------------------- Exercise 2


def _check_forward(student, seed, t, n, i, h, with_h0, grad=False):
    torch.manual_seed(seed)
    rnn = nn.RNN(i, h)
    x = torch.randn(t, n, i)
    h0 = torch.randn(n, h) if with_h0 else None
    w = _weights(rnn.all_weights)[0]
    what = f"rnn_forward with x {tuple(x.shape)}, h0 {'given' if with_h0 else 'None'}"
    grads = [torch.randn(t, n, h), torch.randn(n, h)] if grad else None
    reply = _run(student, name="rnn_forward", args=[x, h0, *w], grad_outs=grads)
    out, h_last = _outputs(reply, 2, what)
    run = _rnn_with(w, i, h)
    with torch.no_grad():
        want_out, want_h = run(x, None if h0 is None else h0[None], list(w))
    _assert_close(out, want_out, what + ": output vs nn.RNN")
    _assert_close(h_last, want_h[0], what + ": h_last vs nn.RNN's h_n[0]")
    if grad:

        def ref(x, h0, w_ih, w_hh, b_ih, b_hh):
            o, hn = run(x, h0[None], [w_ih, w_hh, b_ih, b_hh])
            return o, hn[0]

        want = _reference_grads(ref, [x, h0, *w], grads)
        _assert_grads(reply, want, ["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"], what)


@grade_cell("t06_rnns_rnn_forward_check")
@points(1)
def test_forward_matches_rnn(student):
    """output and h_last equal nn.RNN's (given h0), for several sizes."""
    for seed, t, n, i, h in [(21, 9, 2, 3, 4), (22, 4, 5, 1, 6)]:
        _check_forward(student, seed, t, n, i, h, with_h0=True)


@grade_cell("t06_rnns_rnn_forward_check")
@points(1)
def test_forward_zero_state_and_one_step(student):
    """h0=None starts from zeros; a sequence of one step is one cell application."""
    _check_forward(student, 23, 5, 3, 2, 3, with_h0=False)
    _check_forward(student, 24, 1, 2, 4, 5, with_h0=True)


@grade_cell("t06_rnns_rnn_forward_check")
@points(1)
def test_forward_gradients(student):
    """Backpropagation through time: gradients w.r.t. x, h0 and the weights match nn.RNN's."""
    _check_forward(student, 25, 6, 2, 3, 4, with_h0=True, grad=True)


# ---------------------------------------------------------------------------- Exercise 3


def _check_deep(student, seed, t, n, i, h, layers, with_h0):
    torch.manual_seed(seed)
    rnn = nn.RNN(i, h, num_layers=layers)
    x = torch.randn(t, n, i)
    h0 = torch.randn(layers, n, h) if with_h0 else None
    w = _weights(rnn.all_weights)
    what = f"deep_rnn_forward with {layers} layer{'s' if layers > 1 else ''}, x {tuple(x.shape)}"
    what += f", h0 {'given' if with_h0 else 'None'}"
    reply = _run(student, name="deep_rnn_forward", args=[x, h0, w])
    out, h_n = _outputs(reply, 2, what)
    with torch.no_grad():
        want_out, want_h = rnn(x) if h0 is None else rnn(x, h0)
    _assert_close(out, want_out, what + ": output vs nn.RNN")
    _assert_close(h_n, want_h, what + ": h_n vs nn.RNN")


@grade_cell("t06_rnns_deep_rnn_check")
@points(1)
def test_deep_three_layers(student):
    """Three layers with a given h0 match nn.RNN(num_layers=3)."""
    _check_deep(student, 31, 5, 2, 3, 4, layers=3, with_h0=True)


@grade_cell("t06_rnns_deep_rnn_check")
@points(1)
def test_deep_zero_state_and_one_layer(student):
    """h0=None, and a single layer (h_n of shape (1, N, H))."""
    _check_deep(student, 32, 4, 3, 2, 5, layers=2, with_h0=False)
    _check_deep(student, 33, 3, 2, 4, 3, layers=1, with_h0=True)


# ---------------------------------------------------------------------------- Exercise 4


def _check_bi(student, seed, t, n, i, h, with_h0):
    torch.manual_seed(seed)
    rnn = nn.RNN(i, h, bidirectional=True)
    x = torch.randn(t, n, i)
    h0 = torch.randn(2, n, h) if with_h0 else None
    fwd, bwd = _weights(rnn.all_weights)
    what = f"birnn_forward with x {tuple(x.shape)}, h0 {'given' if with_h0 else 'None'}"
    reply = _run(student, name="birnn_forward", args=[x, h0, fwd, bwd])
    out, h_n = _outputs(reply, 2, what)
    with torch.no_grad():
        want_out, want_h = rnn(x) if h0 is None else rnn(x, h0)
    return (out, want_out, what + ": output vs nn.RNN(bidirectional=True)"), (
        h_n,
        want_h,
        what + ": h_n vs nn.RNN(bidirectional=True)",
    )


@grade_cell("t06_rnns_birnn_check")
@points(1)
def test_bi_output(student):
    """The (T, N, 2H) output matches nn.RNN(bidirectional=True), h0 None and given."""
    for seed, with_h0 in [(41, False), (42, True)]:
        out_case, _ = _check_bi(student, seed, 7, 2, 3, 4, with_h0)
        _assert_close(*out_case)


@grade_cell("t06_rnns_birnn_check")
@points(1)
def test_bi_final_states(student):
    """h_n (2, N, H): forward state at the last step, backward state at step 0."""
    for seed, t, with_h0 in [(43, 5, True), (44, 1, False)]:
        _, h_case = _check_bi(student, seed, t, 3, 2, 5, with_h0)
        _assert_close(*h_case)
