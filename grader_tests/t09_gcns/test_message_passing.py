"""Hidden tests for T09's message passing on edge lists: gcn_propagate, edge_softmax, GATLayer and
graph_readout, each in its own grade cell.

Expected values come from the definitions written out here on dense matrices (A_hat x with
A_hat = D^-1/2 (A + I) D^-1/2; the GAT's masked row softmax; a loop over the graphs of a batch)
or by hand (a star, an isolated node). `gcn_propagate` must not build an (N, N) tensor: its peak
memory on 30,000 nodes is measured in the student's process by torch.profiler's allocation
events (bytes, not time). `GATLayer` is run with a correct `edge_softmax` in place of the
notebook's, so a mistake in Exercise 7 costs only Exercise 7's points.
"""

import torch
import torch.nn.functional as F

from dlcourse.grading import grade_cell, points
from dlcourse.grading.compare import close

TOL = {"atol": 1e-5, "rtol": 1e-5}


def random_edges(n, p, seed, isolated=()):
    """(adjacency, edge list) of a random undirected graph; nodes in `isolated` have no edges."""
    gen = torch.Generator().manual_seed(seed)
    upper = (torch.rand(n, n, generator=gen) < p).float().triu(1)
    adj = upper + upper.T
    for v in isolated:
        adj[v, :] = adj[:, v] = 0.0
    edges = adj.nonzero().T.flip(0)
    shuffle = torch.randperm(edges.shape[1], generator=gen)  # no order may be relied on
    return adj, edges[:, shuffle].contiguous()


def dense_norm(adj):
    a = adj + torch.eye(adj.shape[0], dtype=adj.dtype)
    d = a.sum(1)
    return a / torch.sqrt(d[:, None] * d[None, :])


# --------------------------------------------------------------------------- Exercise 6

PROPAGATE = "t09_gcns_propagate_check"


def probe_propagate(ns, x, edge_index, num_nodes, grad_out=None):
    from dlcourse.grading.probing import output_and_gradient

    return output_and_gradient(ns["gcn_propagate"], x, grad_out, edge_index, num_nodes)


def probe_propagate_memory(ns, num_nodes, num_edges, features):
    """Peak bytes allocated by one call on a random graph, from the profiler's memory events."""
    from dlcourse import measure

    gen = torch.Generator().manual_seed(0)
    src = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    dst = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    x = torch.randn(num_nodes, features, generator=gen)
    return measure.peak_memory_bytes(lambda: ns["gcn_propagate"](x, edge_index, num_nodes))


@grade_cell(PROPAGATE)
@points(1)
def test_propagate_random_graphs(student):
    """A_hat x on random graphs (edges in random order, one graph with isolated nodes, one in
    float64), against the dense A_hat built here."""
    for n, p, seed, isolated, dtype in [(15, 0.25, 601, (), torch.float32),
                                        (22, 0.15, 602, (0, 7), torch.float32),
                                        (9, 0.4, 603, (), torch.float64)]:  # fmt: skip
        adj, edges = random_edges(n, p, seed, isolated)
        adj, x = (
            adj.to(dtype),
            torch.randn(n, 4, dtype=dtype, generator=torch.Generator().manual_seed(seed)),
        )
        reply = student.run(probe_propagate, x=x, edge_index=edges, num_nodes=n)
        what = f"gcn_propagate on a random {dtype} graph of {n} nodes, {edges.shape[1]} edges"
        close(reply["out"], dense_norm(adj) @ x, what, "A_hat x", **TOL)
        assert reply["out"].dtype == dtype, (
            f"{what}: result dtype {reply['out'].dtype}, not {dtype}"
        )


@grade_cell(PROPAGATE)
@points(1)
def test_propagate_star_by_hand(student):
    """A star (centre 0, leaves 1-3) and an isolated node 4: the centre gets x0/4 + sum of
    x_leaf/sqrt(8), a leaf x_leaf/2 + x0/sqrt(8), the isolated node keeps its features; x is
    left unchanged; and the gradient with respect to x is A_hat^T grad = A_hat grad."""
    edges = torch.tensor([[1, 2, 3, 0, 0, 0], [0, 0, 0, 1, 2, 3]])
    x = torch.tensor([[4.0, 1.0], [2.0, 0.0], [0.0, 2.0], [-2.0, 4.0], [3.0, -5.0]])
    s8 = 8**-0.5
    want = torch.stack(
        [x[0] / 4 + (x[1] + x[2] + x[3]) * s8] + [x[k] / 2 + x[0] * s8 for k in (1, 2, 3)] + [x[4]]
    )
    grad_out = torch.randn(5, 2, generator=torch.Generator().manual_seed(604))
    reply = student.run(probe_propagate, x=x, edge_index=edges, num_nodes=5, grad_out=grad_out)
    what = "gcn_propagate(star of 3 leaves + an isolated node)"
    close(reply["out"], want, what, "the values worked out by hand", **TOL)
    assert reply["unchanged"], "gcn_propagate changed its input x"
    assert reply.get("dx") is not None, "gcn_propagate: no gradient reaches x"
    adj = torch.zeros(5, 5)
    adj[0, 1:4] = adj[1:4, 0] = 1.0
    close(
        reply["dx"], dense_norm(adj) @ grad_out, "gcn_propagate: gradient with respect to x", **TOL
    )


@grade_cell(PROPAGATE)
@points(1)
def test_propagate_no_dense_matrix(student):
    """30,000 nodes, 60,000 edges: the call's peak memory stays below 1% of one dense (N, N)
    float32 matrix (3.6 GB); an edge-list implementation needs a few MB."""
    n = 30_000
    peak = student.run(probe_propagate_memory, num_nodes=n, num_edges=60_000, features=8)
    limit = 0.01 * n * n * 4
    assert isinstance(peak, int) and peak < limit, (
        f"gcn_propagate on {n:,} nodes allocated {peak / 1e6:,.0f} MB at its peak; an edge list "
        f"needs a few MB (limit {limit / 1e6:.0f} MB, 1% of one dense {n:,} x {n:,} matrix): "
        "build no (N, N) tensor"
    )


# --------------------------------------------------------------------------- Exercise 7

SOFTMAX = "t09_gcns_edge_softmax_check"


def probe_call(ns, name, args):
    out = ns[name](*args)
    return out.detach() if isinstance(out, torch.Tensor) else repr(out)[:80]


def probe_softmax_grad(ns, scores, target, num_nodes, grad_out):
    leaf = scores.clone().requires_grad_(True)
    out = ns["edge_softmax"](leaf, target, num_nodes)
    if not (isinstance(out, torch.Tensor) and out.requires_grad and out.shape == grad_out.shape):
        return None
    (out * grad_out).sum().backward()
    return leaf.grad


def reference_softmax(scores, target, num_nodes):
    out = torch.zeros_like(scores)
    for node in range(num_nodes):
        into = target == node
        if into.any():
            out[into] = torch.softmax(scores[into].double(), 0).to(scores.dtype)
    return out


@grade_cell(SOFTMAX)
@points(1)
def test_edge_softmax_values(student):
    """Random scores into 9 nodes (two with no incoming edge), and scores of up to 5,000 (no
    overflow), against torch.softmax node by node."""
    gen = torch.Generator().manual_seed(701)
    target = torch.randint(0, 7, (40,), generator=gen)  # nodes 7 and 8 receive nothing
    for scale in (2.0, 5000.0):
        scores = torch.randn(40, generator=gen) * scale
        got = student.run(probe_call, name="edge_softmax", args=[scores, target, 9])
        what = f"edge_softmax on 40 edges into 9 nodes, scores of size about {scale:g}"
        close(got, reference_softmax(scores, target, 9), what, "torch.softmax node by node", **TOL)


@grade_cell(SOFTMAX)
@points(1)
def test_edge_softmax_gradient_and_float64(student):
    """Gradients with respect to the scores (autograd through the reference), in float64."""
    gen = torch.Generator().manual_seed(702)
    target = torch.randint(0, 5, (25,), generator=gen)
    scores = torch.randn(25, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(25, generator=gen, dtype=torch.float64)
    got = student.run(probe_call, name="edge_softmax", args=[scores, target, 5])
    close(got, reference_softmax(scores, target, 5), "edge_softmax in float64", **TOL)
    assert got.dtype == torch.float64, f"edge_softmax of float64 scores returned {got.dtype}"
    grad = student.run(
        probe_softmax_grad, scores=scores, target=target, num_nodes=5, grad_out=grad_out
    )
    assert grad is not None, "edge_softmax: no gradient reaches the scores"
    leaf = scores.clone().requires_grad_(True)
    (reference_softmax(leaf, target, 5) * grad_out).sum().backward()
    close(grad, leaf.grad, "edge_softmax: gradient with respect to the scores", **TOL)


# --------------------------------------------------------------------------- Exercise 8

GAT = "t09_gcns_gat_check"


def probe_gat(ns, in_f, out_f, state, x, edge_index):
    """Build GATLayer(in_f, out_f), report its parameters, load `state` and run it, with a
    correct edge_softmax in place of the notebook's."""

    def reference_edge_softmax(scores, target, num_nodes):
        largest = torch.full((num_nodes,), float("-inf"), dtype=scores.dtype)
        largest = largest.scatter_reduce(0, target, scores, reduce="amax", include_self=False)
        e = torch.exp(scores - largest[target])
        total = torch.zeros(num_nodes, dtype=scores.dtype).index_add(0, target, e)
        return e / total[target]

    layer = ns["GATLayer"](in_f, out_f)
    params = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    reply = {"params": params, "bias": None, "att_std": None}
    if "bias" in params:
        reply["bias"] = layer.bias.detach().clone()
    if "att_src" in params and "att_dst" in params:
        reply["att_std"] = torch.cat([layer.att_src.detach(), layer.att_dst.detach()]).std().item()
    if state is None:
        return reply
    with torch.no_grad():
        for key, value in state.items():
            layer.get_parameter(key).copy_(value)
    definitions = getattr(layer.forward, "__globals__", {})
    saved = definitions.get("edge_softmax")
    definitions["edge_softmax"] = reference_edge_softmax
    try:
        with torch.no_grad():
            result = layer(x, edge_index)
    finally:
        if saved is None:
            definitions.pop("edge_softmax", None)
        else:
            definitions["edge_softmax"] = saved
    if not (isinstance(result, tuple | list) and len(result) == 2):
        reply["returned"] = type(result).__name__
        return reply
    reply["out"], reply["alpha"] = (
        t.detach() if isinstance(t, torch.Tensor) else repr(t)[:60] for t in result
    )
    return reply


def gat_case(seed, n, in_f, out_f, p=0.3, isolated=()):
    gen = torch.Generator().manual_seed(seed)
    adj, edges = random_edges(n, p, seed, isolated)
    state = {
        "linear.weight": torch.randn(out_f, in_f, generator=gen) * 0.5,
        "att_src": torch.randn(out_f, generator=gen),
        "att_dst": torch.randn(out_f, generator=gen),
        "bias": torch.randn(out_f, generator=gen),
    }
    x = torch.randn(n, in_f, generator=gen)
    return adj, edges, state, x


def gat_reference(adj, edges, state, x):
    wx = x @ state["linear.weight"].T
    scores = F.leaky_relu((wx @ state["att_dst"])[:, None] + (wx @ state["att_src"])[None, :], 0.2)
    allowed = (adj + torch.eye(len(adj))) > 0
    alpha = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=1)
    loops = torch.arange(len(adj))
    source, target = torch.cat([edges[0], loops]), torch.cat([edges[1], loops])
    return alpha @ wx + state["bias"], alpha[target, source]


def _gat(student, case, in_f, out_f):
    adj, edges, state, x = case
    reply = student.run(probe_gat, in_f=in_f, out_f=out_f, state=state, x=x, edge_index=edges)
    what = f"GATLayer({in_f}, {out_f}) on a {len(adj)}-node graph"
    assert "out" in reply, f"{what} returned a {reply.get('returned')}, not a pair (out, alpha)"
    return reply, what


@grade_cell(GAT)
@points(1)
def test_gat_parameters(student):
    """linear.weight (out, in) without a bias, att_src and att_dst (out,), bias (out,) of zeros;
    the attention vectors drawn with a standard deviation near 0.1."""
    reply = student.run(probe_gat, in_f=12, out_f=40, state=None, x=None, edge_index=None)
    want = {"linear.weight": (40, 12), "att_src": (40,), "att_dst": (40,), "bias": (40,)}
    assert reply["params"] == want, (
        f"GATLayer(12, 40) parameters {reply['params']}, expected {want}"
    )
    assert torch.equal(reply["bias"], torch.zeros(40)), "GATLayer's bias does not start at 0"
    assert 0.05 < reply["att_std"] < 0.2, (
        f"GATLayer's attention vectors have a standard deviation of {reply['att_std']:.3g}; "
        "nn.init.normal_(..., std=0.1) gives about 0.1"
    )


@grade_cell(GAT)
@points(1)
def test_gat_forward(student):
    """With the grader's weights: out and alpha against the dense formula, on two graphs."""
    for seed, n, in_f, out_f in [(801, 12, 5, 3), (802, 20, 4, 6)]:
        case = gat_case(seed, n, in_f, out_f)
        reply, what = _gat(student, case, in_f, out_f)
        want_out, want_alpha = gat_reference(*case)
        close(reply["out"], want_out, f"{what}: out", "the dense GAT formula", **TOL)
        close(reply["alpha"], want_alpha, f"{what}: alpha (edges, then self-loops)", **TOL)


@grade_cell(GAT)
@points(1)
def test_gat_isolated_nodes_and_weights_sum_to_one(student):
    """Isolated nodes attend only to themselves (alpha 1, out = W x + b); the weights into every
    node sum to 1."""
    case = gat_case(803, 15, 3, 4, p=0.25, isolated=(2, 9))
    reply, what = _gat(student, case, 3, 4)
    adj, edges, state, x = case
    want_out, want_alpha = gat_reference(*case)
    close(reply["out"], want_out, f"{what} with isolated nodes 2 and 9: out", **TOL)
    alpha = reply["alpha"]
    close(alpha, want_alpha, f"{what} with isolated nodes 2 and 9: alpha", **TOL)
    target = torch.cat([edges[1], torch.arange(15)])
    sums = torch.zeros(15, dtype=alpha.dtype).index_add(0, target, alpha)
    close(sums, torch.ones(15), f"{what}: the sum of alpha over each node's incoming edges", **TOL)


# --------------------------------------------------------------------------- Exercise 9

READOUT = "t09_gcns_readout_check"


def probe_readout(ns, h, batch, num_graphs, how, grad_out=None):
    leaf = h.clone().requires_grad_(grad_out is not None)
    try:
        out = ns["graph_readout"](leaf, batch, num_graphs, how)
    except ValueError as exc:
        return {"error": f"ValueError: {exc}"[:120]}
    reply = {"out": out.detach() if isinstance(out, torch.Tensor) else repr(out)[:80]}
    if grad_out is not None and isinstance(out, torch.Tensor) and out.requires_grad:
        (out * grad_out).sum().backward()
        reply["dh"] = leaf.grad
    return reply


POOL = {"sum": lambda r: r.sum(0), "mean": lambda r: r.mean(0), "max": lambda r: r.max(0).values}


@grade_cell(READOUT)
@points(1)
def test_readout_values(student):
    """Sum, mean and max of 5 graphs of 1 to 9 nodes (nodes in random order; negative values, so
    a max that starts from 0 is wrong) against a loop over the graphs."""
    gen = torch.Generator().manual_seed(901)
    sizes = [3, 1, 9, 4, 2]
    batch = torch.repeat_interleave(torch.arange(5), torch.tensor(sizes))
    batch = batch[torch.randperm(len(batch), generator=gen)]
    h = torch.randn(len(batch), 6, generator=gen) - 2.0
    for how, pool in POOL.items():
        reply = student.run(probe_readout, h=h, batch=batch, num_graphs=5, how=how)
        assert "out" in reply, f"graph_readout(how={how!r}) raised {reply['error']}"
        want = torch.stack([pool(h[batch == g]) for g in range(5)])
        close(
            reply["out"],
            want,
            f"graph_readout(how={how!r}) on 5 graphs",
            "a loop over the graphs",
            **TOL,
        )


@grade_cell(READOUT)
@points(1)
def test_readout_gradient_and_unknown(student):
    """The mean's gradient is grad / (nodes of the graph) on every node; how="median" raises a
    ValueError."""
    batch = torch.tensor([0, 1, 1, 0, 1, 1])
    h = torch.randn(6, 3, generator=torch.Generator().manual_seed(902))
    grad_out = torch.tensor([[1.0, 2.0, 3.0], [4.0, 8.0, -4.0]])
    reply = student.run(
        probe_readout, h=h, batch=batch, num_graphs=2, how="mean", grad_out=grad_out
    )
    assert reply.get("dh") is not None, "graph_readout(how='mean'): no gradient reaches h"
    want = grad_out[batch] / torch.tensor([2.0, 4.0])[batch][:, None]
    close(reply["dh"], want, "graph_readout(how='mean'): gradient with respect to h", **TOL)
    reply = student.run(probe_readout, h=h, batch=batch, num_graphs=2, how="median")
    assert "error" in reply, (
        f"graph_readout(how='median') returned {reply.get('out')!r:.60}; "
        "it should raise a ValueError"
    )
