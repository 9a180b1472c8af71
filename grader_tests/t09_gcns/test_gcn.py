"""Hidden tests for T09: normalize_adjacency, GCNLayer, GCN, the masked loss and accuracy, and
embedding_spread, each in its own grade cell.

The graphs are the grader's: a star and an isolated node (values derivable by hand), and random
graphs whose expected results are computed here from the definitions (D^-1/2 (A + I) D^-1/2,
A_hat X W + b, F.cross_entropy, F.pdist).
"""

import ast
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close

TOL = {"atol": 1e-5, "rtol": 1e-5}


def random_graph(n, p, seed):
    """A symmetric 0/1 adjacency without self-loops (float32)."""
    gen = torch.Generator().manual_seed(seed)
    upper = (torch.rand(n, n, generator=gen) < p).float().triu(1)
    return upper + upper.T


def reference_norm(adj):
    a = adj + torch.eye(adj.shape[0], dtype=adj.dtype)
    d = a.sum(1)
    return a / torch.sqrt(d[:, None] * d[None, :])


def _close(got, want, what):
    close(got, want, what, **TOL)


# --------------------------------------------------------------------------- Exercise 1


def _networkx_uses(source):
    """networkx names in a definition's source: the module itself or its Laplacians."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and (node.id in ("nx", "networkx") or "laplacian" in node.id):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and "laplacian" in node.attr:
            found.add(node.attr)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            found.update(m for m in modules if "networkx" in m)
    return sorted(found)


def _run_normalize(student, adj):
    """probe_normalize, after checking that normalize_adjacency does not call networkx."""
    used = _networkx_uses(student.source("normalize_adjacency"))
    assert not used, (
        f"normalize_adjacency uses networkx ({', '.join(used)}): build it with tensor operations"
    )
    return student.run(probe_normalize, adj=adj)


def probe_normalize(ns, adj):
    before = adj.clone()
    out = ns["normalize_adjacency"](adj)
    return {
        "out": out.detach() if isinstance(out, torch.Tensor) else repr(out)[:80],
        "unchanged": bool(torch.equal(adj, before)),
    }


@grade_cell("t09_gcns_normalize_check")
@points(1)
def test_normalize_star_by_hand(student):
    """A star with a centre and 4 leaves: centre 1/5, leaves 1/2, centre-leaf 1/sqrt(10)."""
    adj = torch.zeros(5, 5)
    adj[0, 1:] = adj[1:, 0] = 1.0
    want = torch.zeros(5, 5)
    want[0, 0] = 1 / 5
    want[0, 1:] = want[1:, 0] = 1 / math.sqrt(10)
    want[range(1, 5), range(1, 5)] = 1 / 2
    reply = _run_normalize(student, adj)
    _close(reply["out"], want, "normalize_adjacency(star with 4 leaves)")


@grade_cell("t09_gcns_normalize_check")
@points(1)
def test_normalize_random_graphs(student):
    """Random graphs (one with an isolated node: A_hat_ii = 1) and a float64 input."""
    for n, p, seed in [(12, 0.3, 81), (20, 0.15, 82)]:
        adj = random_graph(n, p, seed)
        adj[0, :] = adj[:, 0] = 0.0  # node 0 has no friends: only its self-loop
        reply = _run_normalize(student, adj)
        _close(reply["out"], reference_norm(adj), f"normalize_adjacency(random graph, {n} nodes)")
    adj = random_graph(9, 0.4, 83).double()
    reply = _run_normalize(student, adj)
    got = reply["out"]
    _close(got, reference_norm(adj), "normalize_adjacency(float64 graph)")
    assert got.dtype == torch.float64, f"a float64 adjacency gave a {got.dtype} result"


@grade_cell("t09_gcns_normalize_check")
@points(1)
def test_normalize_leaves_input(student):
    """The input is not modified, and the result is symmetric."""
    adj = random_graph(15, 0.25, 84)
    reply = _run_normalize(student, adj)
    assert reply["unchanged"], (
        "normalize_adjacency modified its input (adj += ... or fill_diagonal_)"
    )
    out = reply["out"]
    _close(out, reference_norm(adj), "normalize_adjacency(random graph, 15 nodes)")
    assert torch.allclose(out, out.T, atol=1e-6), "normalize_adjacency's result is not symmetric"


# --------------------------------------------------------------------------- Exercise 2


def probe_layer(ns, in_f, out_f, bias, weight, b, x, adj_norm, grad_out):
    layer = ns["GCNLayer"](in_f, out_f, bias=bias)
    w_attr, b_attr = getattr(layer, "weight", None), getattr(layer, "bias", "missing")
    info = {
        "weight_shape": tuple(w_attr.shape) if isinstance(w_attr, torch.Tensor) else None,
        "bias": "missing" if isinstance(b_attr, str) else (
            None if b_attr is None else tuple(b_attr.shape)),
        "n_params": sum(p.numel() for p in layer.parameters()),
        "weight_is_param": isinstance(w_attr, nn.Parameter),
    }  # fmt: skip
    shapes_ok = info["weight_shape"] == tuple(weight.shape) if weight is not None else False
    if not shapes_ok or (bias and info["bias"] != tuple(b.shape)):
        return info
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias:
            layer.bias.copy_(b)
    x = x.clone().requires_grad_(True)
    out = layer(x, adj_norm)
    info["out"] = out.detach()
    (out * grad_out).sum().backward()
    info["dx"] = x.grad
    info["dw"] = layer.weight.grad
    info["db"] = layer.bias.grad if bias else None
    return info


def _layer_case(seed, n, in_f, out_f, bias):
    gen = torch.Generator().manual_seed(seed)
    adj_norm = reference_norm(random_graph(n, 0.3, seed))
    weight = torch.randn(in_f, out_f, generator=gen)
    b = torch.randn(out_f, generator=gen) if bias else None
    x = torch.randn(n, in_f, generator=gen)
    grad_out = torch.randn(n, out_f, generator=gen)
    return {"in_f": in_f, "out_f": out_f, "bias": bias, "weight": weight, "b": b, "x": x,
            "adj_norm": adj_norm, "grad_out": grad_out}  # fmt: skip


def _assert_loaded(info, case):
    what = f"GCNLayer({case['in_f']}, {case['out_f']}, bias={case['bias']})"
    assert "out" in info, (
        f"{what}: the grader could not set its weights: weight {info['weight_shape']}, bias "
        f"{info['bias']}, expected {(case['in_f'], case['out_f'])} and "
        f"{(case['out_f'],) if case['bias'] else None}"
    )


@grade_cell("t09_gcns_layer_check")
@points(1)
def test_layer_parameters(student):
    """weight (in, out) and bias (out,) are parameters; bias=False gives bias None."""
    for in_f, out_f, bias in [(7, 3, True), (5, 6, False)]:
        info = student.run(probe_layer, in_f=in_f, out_f=out_f, bias=bias, weight=None, b=None,
                           x=None, adj_norm=None, grad_out=None)  # fmt: skip
        what = f"GCNLayer({in_f}, {out_f}, bias={bias})"
        assert info["weight_is_param"], f"{what}.weight is not an nn.Parameter"
        assert info["weight_shape"] == (in_f, out_f), (
            f"{what}.weight has shape {info['weight_shape']}, expected {(in_f, out_f)}"
        )
        want_bias = (out_f,) if bias else None
        assert info["bias"] == want_bias, f"{what}.bias is {info['bias']}, expected {want_bias}"
        want_n = in_f * out_f + (out_f if bias else 0)
        assert info["n_params"] == want_n, f"{what}: {info['n_params']} parameters, not {want_n}"


@grade_cell("t09_gcns_layer_check")
@points(1)
def test_layer_forward(student):
    """With the grader's weights, the output is A_hat x W + b (with and without bias)."""
    for seed, n, in_f, out_f, bias in [(91, 10, 4, 3, True), (92, 7, 5, 2, False)]:
        case = _layer_case(seed, n, in_f, out_f, bias)
        info = student.run(probe_layer, **case)
        _assert_loaded(info, case)
        want = case["adj_norm"] @ case["x"] @ case["weight"]
        if bias:
            want = want + case["b"]
        _close(info["out"], want, f"GCNLayer({in_f}, {out_f}, bias={bias}) on a {n}-node graph")


@grade_cell("t09_gcns_layer_check")
@points(1)
def test_layer_gradients(student):
    """Gradients w.r.t. x, weight and bias equal those of A_hat x W + b."""
    case = _layer_case(93, 9, 4, 3, True)
    info = student.run(probe_layer, **case)
    _assert_loaded(info, case)
    x, w, b = (case[k].clone().requires_grad_(True) for k in ("x", "weight", "b"))
    (((case["adj_norm"] @ x @ w) + b) * case["grad_out"]).sum().backward()
    for label, key, want in [("x", "dx", x.grad), ("weight", "dw", w.grad), ("bias", "db", b.grad)]:
        assert info.get(key) is not None, f"GCNLayer: no gradient reaches {label}"
        _close(info[key], want, f"GCNLayer: the gradient w.r.t. {label}")


# --------------------------------------------------------------------------- Exercise 3


def probe_gcn(ns, in_f, hidden, classes, state, x, adj_norm):
    model = ns["GCN"](in_f, hidden, classes)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if state is None or shapes != {k: tuple(v.shape) for k, v in state.items()}:
        return {"shapes": shapes}
    model.load_state_dict(state)
    with torch.no_grad():
        out = model(x, adj_norm)
    if not isinstance(out, tuple | list) or len(out) != 2:
        return {"shapes": shapes, "error": f"forward returned {type(out).__name__}, not a pair"}
    return {"shapes": shapes, "logits": out[0], "embedding": out[1]}


def _gcn_state(in_f, hidden, classes, seed):
    gen = torch.Generator().manual_seed(seed)
    sizes = [in_f, *hidden]
    state = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        state[f"layers.{i}.weight"] = torch.randn(a, b, generator=gen) / math.sqrt(a)
        state[f"layers.{i}.bias"] = torch.randn(b, generator=gen) * 0.1
    state["classifier.weight"] = torch.randn(classes, sizes[-1], generator=gen)
    state["classifier.bias"] = torch.randn(classes, generator=gen)
    return state


@grade_cell("t09_gcns_model_check")
@points(1)
def test_gcn_parameters(student):
    """Parameter names and shapes: layers.<i>.weight/bias and classifier.weight/bias."""
    for in_f, hidden, classes in [(6, (8, 3), 4), (5, (2,), 3)]:
        want = {k: tuple(v.shape) for k, v in _gcn_state(in_f, hidden, classes, 0).items()}
        info = student.run(probe_gcn, in_f=in_f, hidden=hidden, classes=classes, state=None,
                           x=None, adj_norm=None)  # fmt: skip
        got = info["shapes"]
        assert got == want, (
            f"GCN({in_f}, {hidden}, {classes}) has parameters {got}, expected {want}"
        )


@grade_cell("t09_gcns_model_check")
@points(1)
def test_gcn_forward(student):
    """With the grader's weights: embedding = tanh layers, logits = classifier(embedding)."""
    for seed, in_f, hidden, classes, n in [(101, 6, (8, 3), 4, 11), (102, 5, (4, 4, 4, 2), 2, 8)]:
        state = _gcn_state(in_f, hidden, classes, seed)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(n, in_f, generator=gen)
        adj_norm = reference_norm(random_graph(n, 0.35, seed))
        info = student.run(probe_gcn, in_f=in_f, hidden=hidden, classes=classes, state=state,
                           x=x, adj_norm=adj_norm)  # fmt: skip
        what = f"GCN({in_f}, {hidden}, {classes}) on a {n}-node graph"
        assert "error" not in info, f"{what}: {info.get('error')}"
        assert "logits" in info, (
            f"{what}: the grader's weights do not fit: parameters {info['shapes']}, expected "
            f"{ {k: tuple(v.shape) for k, v in state.items()} }"
        )
        h = x
        for i in range(len(hidden)):
            h = torch.tanh(adj_norm @ h @ state[f"layers.{i}.weight"] + state[f"layers.{i}.bias"])
        logits = h @ state["classifier.weight"].T + state["classifier.bias"]
        _close(info["embedding"], h, what + ": embedding")
        _close(info["logits"], logits, what + ": logits")


# --------------------------------------------------------------------------- Exercise 4


def probe_masked(ns, name, logits, labels, mask):
    value = ns[name](logits, labels, mask)
    if isinstance(value, torch.Tensor):
        return value.detach()
    return value if isinstance(value, int | float) else repr(value)[:80]


def _masked_case(seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(30, 3, generator=gen) * 2
    labels = torch.randint(0, 3, (30,), generator=gen)
    mask = torch.rand(30, generator=gen) < 0.4
    return logits, labels, mask


@grade_cell("t09_gcns_masked_check")
@points(1)
def test_masked_cross_entropy(student):
    """Mean cross-entropy over the masked nodes only (random logits, 3 classes)."""
    for seed in (111, 112):
        logits, labels, mask = _masked_case(seed)
        got = student.run(probe_masked, name="masked_cross_entropy", logits=logits,
                          labels=labels, mask=mask)  # fmt: skip
        what = f"masked_cross_entropy with {int(mask.sum())} of 30 nodes masked"
        assert isinstance(got, torch.Tensor | float), f"{what} returned {type(got).__name__}"
        got = torch.as_tensor(got)
        assert got.numel() == 1, f"{what}: a tensor of shape {tuple(got.shape)}, not one number"
        _close(got.reshape(()), F.cross_entropy(logits[mask], labels[mask]), what)


@grade_cell("t09_gcns_masked_check")
@points(1)
def test_masked_accuracy(student):
    """Fraction of masked nodes whose argmax is the label (exact)."""
    for seed in (113, 114):
        logits, labels, mask = _masked_case(seed)
        got = student.run(probe_masked, name="masked_accuracy", logits=logits, labels=labels,
                          mask=mask)  # fmt: skip
        want = (logits[mask].argmax(1) == labels[mask]).float().mean().item()
        assert isinstance(got, float), f"masked_accuracy returned {got!r}, not a Python float"
        assert abs(got - want) < 1e-6, (
            f"masked_accuracy with {int(mask.sum())} of 30 nodes masked: {got:.4f}, "
            f"expected {want:.4f}"
        )


# --------------------------------------------------------------------------- Exercise 5


def probe_spread(ns, h):
    """embedding_spread(h), with torch's pairwise-distance functions (the check) spied on."""
    called, saved = [], []
    for owner in (torch, F):
        for attr in ("pdist", "cdist"):
            if not hasattr(owner, attr):
                continue
            original = getattr(owner, attr)

            def wrapper(*a, _name=attr, _original=original, **k):
                called.append(_name)
                return _original(*a, **k)

            saved.append((owner, attr, original))
            setattr(owner, attr, wrapper)
    try:
        s = ns["embedding_spread"](h)
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)
    return {"value": s.detach() if isinstance(s, torch.Tensor) else s, "called": called}


def _spread(student, h, want, what):
    reply = student.run(probe_spread, h=h)
    assert not reply["called"], (
        f"embedding_spread calls torch.{reply['called'][0]}: compute the distances yourself"
    )
    got = reply["value"]
    got = torch.as_tensor(got) if isinstance(got, float) else got
    assert isinstance(got, torch.Tensor) and got.numel() == 1, (
        f"embedding_spread({what}) returned {type(got).__name__}, not a single number"
    )
    value = got.item()
    assert abs(value - want) <= 1e-5 + 1e-5 * abs(want), (
        f"embedding_spread({what}) = {value:.6g}, expected {want:.6g}"
    )


@grade_cell("t09_gcns_spread_check")
@points(1)
def test_spread_by_hand(student):
    """Two antipodal rows give 2; three orthonormal rows sqrt(2); one direction (scaled) 0."""
    _spread(student, torch.tensor([[3.0, 4.0], [-0.3, -0.4]]), 2.0, "two opposite rows")
    _spread(student, torch.eye(3) * torch.tensor([[2.0], [0.5], [7.0]]), math.sqrt(2),
            "three scaled orthogonal rows")  # fmt: skip
    _spread(student, torch.tensor([[0.5], [2.0], [9.0]]) @ torch.tensor([[1.0, 1.0, -1.0, 2.0]]),
            0.0, "rows along one direction")  # fmt: skip


@grade_cell("t09_gcns_spread_check")
@points(1)
def test_spread_random(student):
    """Random embeddings: the mean pairwise distance of the unit-length rows."""
    for seed, n, f in [(121, 25, 4), (122, 6, 16)]:
        h = torch.randn(n, f, generator=torch.Generator().manual_seed(seed))
        want = F.pdist(F.normalize(h.double())).mean().item()
        _spread(student, h, want, f"random ({n}, {f})")
