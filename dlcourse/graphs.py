"""Graphs as edge lists, batches of graphs, and a graph-classification data set that is generated
offline, for the message-passing sections of T09.

A dense (N, N) adjacency matrix costs N^2 numbers whatever the number of edges: 1.6 GB in
float32 for 20,000 nodes. Graph libraries (PyTorch Geometric, DGL) keep an **edge list**
instead, a (2, E) int64 tensor whose columns are (source, target) pairs, with each undirected
edge stored once in each direction; messages flow from `edge_index[0]` to `edge_index[1]`.

Many small graphs are trained on together as one big graph with no edges between its parts
(their disjoint union): the node features are stacked, each graph's edge list is shifted by
the number of nodes before it, and `batch[v]` says which graph node v belongs to.

The data set asks which random process made a network: Erdős–Rényi graphs (every pair linked
with the same probability), Barabási–Albert graphs (preferential attachment: a few hubs) and
Watts–Strogatz graphs (a ring lattice with a few rewired edges: many triangles, even degrees),
all with about 4 neighbours per node on average. The nodes carry no features (each holds the
number 1), so whatever tells the kinds apart is in the structure, and a model must pass messages
along the edges to see it. networkx generates the graphs from seeds, so every machine gets the
same ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = [
    "GRAPH_KINDS",
    "GraphBatch",
    "collate",
    "edge_index_from_adjacency",
    "graph_batches",
    "random_graphs",
    "random_sparse_graph",
]

GRAPH_KINDS = ("Erdős–Rényi", "Barabási–Albert", "Watts–Strogatz")


def edge_index_from_adjacency(adj: torch.Tensor) -> torch.Tensor:
    """The (2, E) edge list of a dense 0/1 adjacency matrix: one column (source, target) for each
    nonzero entry, so an undirected edge appears once in each direction."""
    return adj.nonzero().T.flip(0).contiguous()


@dataclass(frozen=True)
class GraphBatch:
    """Several graphs as one: node features `x` (N, F), `edge_index` (2, E) into the N nodes,
    `batch` (N,) the graph of each node, labels `y` (num_graphs,)."""

    x: torch.Tensor
    edge_index: torch.Tensor
    batch: torch.Tensor
    y: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(*(t.to(device) for t in (self.x, self.edge_index, self.batch, self.y)))


def _edge_index(graph) -> torch.Tensor:
    """The (2, 2m) edge list of a networkx graph with m edges, both directions."""
    edges = torch.tensor(list(graph.edges()), dtype=torch.int64).reshape(-1, 2)
    return torch.cat([edges, edges.flip(1)]).T.contiguous()


def random_graphs(
    count: int, seed: int, nodes: tuple[int, int] = (20, 40), mean_degree: int = 4
) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """`count` graphs, the three kinds in turn (label 0, 1, 2 as in GRAPH_KINDS), each with a
    number of nodes drawn from `nodes` (inclusive): a list of (x, edge_index, label).

    Every node's features are the single number 1 (x is (n, 1) ones). Graph i is generated from
    seed `seed` + i.
    """
    import networkx as nx

    out = []
    rng = torch.Generator().manual_seed(seed)
    for i in range(count):
        label = i % len(GRAPH_KINDS)
        n = int(torch.randint(nodes[0], nodes[1] + 1, (1,), generator=rng))
        s = seed + i
        if label == 0:
            graph = nx.gnp_random_graph(n, mean_degree / (n - 1), seed=s)
        elif label == 1:
            graph = nx.barabasi_albert_graph(n, mean_degree // 2, seed=s)
        else:
            graph = nx.watts_strogatz_graph(n, mean_degree, 0.1, seed=s)
        out.append((torch.ones(n, 1), _edge_index(graph), label))
    return out


def collate(graphs: list[tuple[torch.Tensor, torch.Tensor, int]]) -> GraphBatch:
    """The disjoint union of (x, edge_index, label) graphs: each edge list shifted by the number
    of nodes of the graphs before it."""
    sizes = torch.tensor([len(x) for x, _, _ in graphs])
    offsets = torch.cumsum(sizes, 0) - sizes
    x = torch.cat([x for x, _, _ in graphs])
    edge_index = torch.cat(
        [e + o for (_, e, _), o in zip(graphs, offsets.tolist(), strict=True)], 1
    )
    batch = torch.repeat_interleave(torch.arange(len(graphs)), sizes)
    y = torch.tensor([label for _, _, label in graphs])
    return GraphBatch(x, edge_index, batch, y)


def graph_batches(
    graphs: list[tuple[torch.Tensor, torch.Tensor, int]],
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[GraphBatch]:
    """Mini-batches of whole graphs, each collated into one GraphBatch."""
    order = (
        torch.randperm(len(graphs), generator=generator) if shuffle else torch.arange(len(graphs))
    )
    for start in range(0, len(graphs), batch_size):
        yield collate([graphs[i] for i in order[start : start + batch_size].tolist()])


def random_sparse_graph(
    num_nodes: int, mean_degree: float, generator: torch.Generator
) -> torch.Tensor:
    """The edge list (both directions) of a random graph with about `mean_degree` neighbours per
    node, drawn without building any (N, N) matrix: for timing dense against sparse code."""
    m = int(num_nodes * mean_degree / 2)
    src = torch.randint(0, num_nodes, (m,), generator=generator)
    dst = torch.randint(0, num_nodes, (m,), generator=generator)
    keep = src != dst
    pairs = torch.stack([torch.minimum(src, dst), torch.maximum(src, dst)])[:, keep]
    pairs = torch.unique(pairs, dim=1)
    return torch.cat([pairs, pairs.flip(0)], 1)
