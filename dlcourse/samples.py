"""Real data beyond Fashion-MNIST that every install already has: a photograph, a social network
and English prose.

The tutorials need a natural image to filter, a small graph with known communities and a text
to tokenise, and nothing can be downloaded on the course machines or inside the grader's
sandbox. matplotlib ships sample photographs, networkx builds Zachary's karate club from its own
code, and CPython carries its reference documentation as text (`pydoc_data`), so all three load
offline on a laptop, on Colab and on the cluster, and the repository ships no data file.
"""

from __future__ import annotations

import torch

PHOTOGRAPHS = {"grace_hopper": "grace_hopper.jpg"}


def photograph(name: str = "grace_hopper", size: int | None = None) -> torch.Tensor:
    """A grey-scale photograph as a float32 (H, W) tensor in [0, 1] (ITU-R 601 luma).

    `size` shrinks it (area averaging) so its longer side has that many pixels: hand-written
    loops over pixels are then quick enough to run in a notebook.
    """
    import matplotlib.cbook
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    if name not in PHOTOGRAPHS:
        raise ValueError(f"unknown photograph {name!r}; known: {', '.join(PHOTOGRAPHS)}")
    with matplotlib.cbook.get_sample_data(PHOTOGRAPHS[name]) as f:
        rgb = torch.from_numpy(plt.imread(f, format="jpg").copy()).float().div_(255)
    grey = rgb[..., :3] @ torch.tensor([0.299, 0.587, 0.114])
    if size is not None and size < max(grey.shape):
        scale = size / max(grey.shape)
        out = (round(grey.shape[0] * scale), round(grey.shape[1] * scale))
        grey = F.interpolate(grey[None, None], size=out, mode="area")[0, 0]
    return grey.contiguous()


def karate_club() -> tuple[torch.Tensor, torch.Tensor]:
    """Zachary's karate club: the (34, 34) 0/1 adjacency matrix (symmetric, no self-loops) and
    each member's club after the split as int64 labels (0: Mr. Hi, 1: Officer)."""
    import networkx as nx

    g = nx.karate_club_graph()
    n = g.number_of_nodes()
    adj = torch.zeros(n, n)
    for u, v in g.edges():
        adj[u, v] = adj[v, u] = 1.0
    labels = torch.tensor([0 if g.nodes[i]["club"] == "Mr. Hi" else 1 for i in range(n)])
    return adj, labels


def english_text(prose: bool = False) -> str:
    """About 465,000 characters of English prose: the Python Language Reference's topics, as
    CPython ships them for `help()` (every Python install has them).

    `prose=True` keeps only the running text, about 250,000 characters: paragraphs that start
    at the margin (sentences, bulleted items, headings and footnotes), each joined into one
    line, without the indented code examples and grammar rules, the tables, and the lines of
    `===` or `***` that underline headings. A tokeniser or language model trained on it learns
    English words rather than runs of spaces and punctuation. The text comes with the Python
    that runs it, so its length differs a little between versions (prose: 222,055 characters on
    Python 3.10, 248,913 on 3.11, 259,077 on 3.12, 262,063 on 3.13).
    """
    import re
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k].strip() for k in sorted(topics))
    if not prose:
        return text
    paragraphs = []
    for para in re.split(r"\n\s*\n", text):
        if para[:1] in (" ", "|", "+"):  # code, grammar rules, tables
            continue
        lines = [line.strip() for line in para.split("\n")]
        lines = [line for line in lines if not re.fullmatch(r"([=*\-~^])\1{2,}", line)]
        if lines:
            paragraphs.append(" ".join(lines))
    return "\n\n".join(paragraphs)
