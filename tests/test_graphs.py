"""dlcourse.graphs: edge lists agree with their adjacency matrices, a batch is the disjoint union
of its graphs, the three kinds of random graph differ where they should, and the same seed
gives the same graphs."""

import torch

from dlcourse import graphs


def test_edge_index_from_adjacency_round_trip():
    adj = torch.zeros(4, 4)
    for u, v in [(0, 1), (1, 2), (1, 3)]:
        adj[u, v] = adj[v, u] = 1.0
    edges = graphs.edge_index_from_adjacency(adj)
    assert edges.shape == (2, 6) and edges.dtype == torch.int64
    back = torch.zeros(4, 4)
    back[edges[1], edges[0]] = 1.0
    assert torch.equal(back, adj)


def test_random_graphs_kinds_sizes_and_seeds():
    made = graphs.random_graphs(30, seed=3, nodes=(20, 40))
    assert [label for _, _, label in made] == [0, 1, 2] * 10
    for x, edges, _ in made:
        n = len(x)
        assert 20 <= n <= 40 and torch.equal(x, torch.ones(n, 1))
        assert edges.shape[0] == 2 and int(edges.max()) < n
        assert not bool((edges[0] == edges[1]).any()), "no self-loops"
        pairs = set(map(tuple, edges.T.tolist()))
        assert all((v, u) in pairs for u, v in pairs), "each edge in both directions"
    again = graphs.random_graphs(30, seed=3, nodes=(20, 40))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(made, again, strict=True))
    max_degree = {k: [] for k in range(3)}
    for x, edges, label in graphs.random_graphs(60, seed=4):
        max_degree[label].append(int(torch.bincount(edges[1], minlength=len(x)).max()))
    mean = {k: sum(v) / len(v) for k, v in max_degree.items()}
    assert mean[1] > mean[0] > mean[2], f"hubs (BA) > Erdős–Rényi > Watts–Strogatz: {mean}"


def test_collate_is_the_disjoint_union():
    made = graphs.random_graphs(3, seed=0, nodes=(5, 8))
    b = graphs.collate(made)
    sizes = [len(x) for x, _, _ in made]
    assert b.num_graphs == 3 and len(b.x) == sum(sizes) and b.y.tolist() == [0, 1, 2]
    assert b.batch.tolist() == [g for g, n in enumerate(sizes) for _ in range(n)]
    assert b.edge_index.shape[1] == sum(e.shape[1] for _, e, _ in made)
    assert torch.equal(b.batch[b.edge_index[0]], b.batch[b.edge_index[1]]), "no edge between graphs"
    first = made[0][1]
    assert torch.equal(b.edge_index[:, : first.shape[1]], first)
    assert torch.equal(b.edge_index[:, first.shape[1] :][:, :2] - sizes[0], made[1][1][:, :2])


def test_graph_batches_cover_every_graph_once():
    made = graphs.random_graphs(10, seed=1)
    seen = []
    for b in graphs.graph_batches(
        made, 4, shuffle=True, generator=torch.Generator().manual_seed(0)
    ):
        assert b.num_graphs <= 4
        seen += b.y.tolist()
    assert sorted(seen) == sorted(label for _, _, label in made)


def test_random_sparse_graph():
    edges = graphs.random_sparse_graph(1000, 4, torch.Generator().manual_seed(0))
    assert not bool((edges[0] == edges[1]).any())
    pairs = set(map(tuple, edges.T.tolist()))
    assert len(pairs) == edges.shape[1], "no duplicate edges"
    assert all((v, u) in pairs for u, v in pairs)
    assert 3.5 < edges.shape[1] / 1000 <= 4.0, "about 4 neighbours per node"
