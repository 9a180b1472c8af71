"""Architecture diagrams for the tutorials, drawn by code: the VAE (T05), the LSTM cell (T06), a
pre-norm transformer encoder block (T07) and one round of message passing on a graph (T09).

Drawn rather than shipped as image files, so they release with the notebooks as they are, and
their labels use each tutorial's own notation and attribute names (the transformer block names
`norm1`, `self_attn`, `linear1`, ... as T07's `EncoderBlock` does). Every part is a box, a circle
or an arrow with a text label: tests/test_diagrams.py renders each figure and checks that the
parts are there, inside the figure, and that no two labels overlap.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon

__all__ = ["lstm_cell", "message_passing", "transformer_block", "vae"]

# One colour per kind of part, the same in every diagram.
COLOURS = {
    "data": "#dbe9f6",
    "layer": "#fde2c4",
    "gate": "#d9f0d3",
    "norm": "#ece2f0",
    "op": "#ffffff",
    "loss": "#f8d7da",
}


def _canvas(width: float, height: float, title: str) -> tuple[plt.Figure, plt.Axes]:
    """Axes in drawing units (one unit is about 0.8 inch), with no ticks or frame."""
    fig, ax = plt.subplots(figsize=(0.8 * width, 0.8 * height + 0.4), layout="constrained")
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title)
    return fig, ax


def _box(
    ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, kind: str, fontsize: float = 9
) -> tuple[float, float, float, float]:
    """A rounded box centred at (x, y), its label inside; returns (left, bottom, right, top)."""
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=COLOURS[kind],
            edgecolor="black",
            linewidth=1.0,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return x - w / 2, y - h / 2, x + w / 2, y + h / 2


def _op(ax: plt.Axes, x: float, y: float, text: str, r: float = 0.28) -> None:
    """A pointwise operation (a product, a sum, a non-linearity) as a labelled circle."""
    ax.add_patch(Circle((x, y), r, facecolor=COLOURS["op"], edgecolor="black", linewidth=1.0))
    ax.text(x, y, text, ha="center", va="center", fontsize=10 if len(text) <= 2 else 7)


def _arrow(
    ax: plt.Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    shrink: float = 0,
    colour: str = "black",
    style: str = "-|>",
    rad: float = 0.0,
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=11,
            color=colour,
            linewidth=1.1,
            shrinkA=shrink,
            shrinkB=shrink,
            connectionstyle=f"arc3,rad={rad}",
        )
    )


def _funnel(
    ax: plt.Axes, left: float, right: float, y: float, h_left: float, h_right: float, text: str
) -> None:
    """A layer that narrows or widens (an encoder or a decoder): a trapezoid, half-heights given."""
    corners = [(left, y - h_left), (left, y + h_left), (right, y + h_right), (right, y - h_right)]
    ax.add_patch(Polygon(corners, facecolor=COLOURS["layer"], edgecolor="black"))
    ax.text((left + right) / 2, y, text, ha="center", va="center", fontsize=8)


def _line(ax: plt.Axes, *points: tuple[float, float], colour: str = "black") -> None:
    ax.plot([p[0] for p in points], [p[1] for p in points], color=colour, linewidth=1.1)


def _label(ax: plt.Axes, x: float, y: float, text: str, fontsize: float = 9, **kwargs) -> None:
    ax.text(x, y, text, fontsize=fontsize, **kwargs)


def lstm_cell() -> plt.Figure:
    """One LSTM step: the cell state runs along the top, changed only by a product with the
    forget gate and a sum with the gated candidate; the four gates read [h_{t-1}, x_t]."""
    fig, ax = _canvas(11.5, 7.0, "An LSTM cell: one time step")
    top, bus, gates_y = 5.6, 1.2, 2.5
    # The cell state: c_{t-1} -> (x f_t) -> (+ i_t g_t) -> c_t
    _label(ax, 0.1, top + 0.25, r"$c_{t-1}$", fontsize=11)
    _arrow(ax, (0.1, top), (2.22, top))
    _op(ax, 2.5, top, r"$\times$")
    _arrow(ax, (2.78, top), (5.72, top))
    _op(ax, 6.0, top, "+")
    _arrow(ax, (6.28, top), (11.3, top))
    _label(ax, 10.6, top + 0.25, r"$c_t$", fontsize=11)
    # The input bus: h_{t-1} from the left, x_t from below, read by all four gates
    _label(ax, 0.1, bus - 0.45, r"$h_{t-1}$", fontsize=11)
    _line(ax, (0.1, bus), (8.2, bus))
    _label(ax, 1.05, 0.05, r"$x_t$", fontsize=11)
    _arrow(ax, (1.4, 0.0), (1.4, bus - 0.03))
    _label(ax, 1.6, bus + 0.12, r"$[h_{t-1}, x_t]$", fontsize=8)
    gates = [
        (2.5, "forget gate\n" r"$f_t = \sigma(\cdot)$", "gate"),
        (4.5, "input gate\n" r"$i_t = \sigma(\cdot)$", "gate"),
        (6.5, "candidate\n" r"$g_t = \tanh(\cdot)$", "layer"),
        (8.5, "output gate\n" r"$o_t = \sigma(\cdot)$", "gate"),
    ]
    for x, text, kind in gates:
        _box(ax, x, gates_y, 1.7, 0.95, text, kind, fontsize=8)
        if x < 8.2:
            _arrow(ax, (x, bus), (x, gates_y - 0.5))
    _line(ax, (8.2, bus), (8.5, bus))
    _arrow(ax, (8.5, bus), (8.5, gates_y - 0.5))
    # f_t multiplies the old cell state; i_t * g_t is added to it
    _arrow(ax, (2.5, gates_y + 0.5), (2.5, top - 0.3))
    _op(ax, 6.0, 4.1, r"$\times$")
    _arrow(ax, (4.5, gates_y + 0.5), (5.8, 3.9))
    _arrow(ax, (6.5, gates_y + 0.5), (6.15, 3.85))
    _arrow(ax, (6.0, 4.38), (6.0, top - 0.3))
    # h_t = o_t * tanh(c_t)
    _arrow(ax, (10.0, top), (10.0, 4.45))
    _op(ax, 10.0, 4.1, "tanh", r=0.36)
    _arrow(ax, (10.0, 3.74), (10.0, 2.78))
    _op(ax, 10.0, 2.5, r"$\times$")
    _arrow(ax, (9.35, gates_y), (9.72, 2.5))
    _arrow(ax, (10.28, 2.5), (11.3, 2.5))
    _label(ax, 10.55, 2.0, r"$h_t$", fontsize=11)
    _label(ax, 3.0, 6.45, r"$c_t = f_t \odot c_{t-1} + i_t \odot g_t$", fontsize=10)
    _label(ax, 3.0, 0.15, r"$h_t = o_t \odot \tanh(c_t)$", fontsize=10)
    return fig


FEED_FORWARD = "feed-forward, per token\nlinear1 (d to d_ff), ReLU,\nlinear2 (d_ff to d)"


def transformer_block() -> plt.Figure:
    """A pre-norm encoder block, bottom to top, with T07's attribute names: each sub-layer reads
    a LayerNorm of the residual stream and adds its output back to it."""
    fig, ax = _canvas(9.0, 11.0, "A pre-norm transformer encoder block")
    x, skip = 4.0, 1.2

    def residual(y_from: float, y_to: float) -> None:
        """The skip path: out of the stream at y_from, round the sub-layer, into the sum at y_to."""
        _line(ax, (x, y_from), (skip, y_from), (skip, y_to))
        _arrow(ax, (skip, y_to), (x - 0.28, y_to))
        _label(ax, skip - 1.05, (y_from + y_to) / 2 - 0.1, "residual", fontsize=8, rotation=90)

    _label(ax, x - 1.9, 0.25, r"tokens $x$: $(B, L, d)$ + positions", fontsize=9)
    _arrow(ax, (x, 0.7), (x, 1.65))
    _box(ax, x, 2.0, 3.2, 0.7, "LayerNorm  (norm1)", "norm")
    for dx, name in ((-0.9, "Q"), (0.0, "K"), (0.9, "V")):
        _arrow(ax, (x + dx, 2.35), (x + dx, 3.05))
        _label(ax, x + dx + 0.1, 2.55, name, fontsize=8)
    _box(ax, x, 3.6, 3.6, 1.1, "multi-head attention\n(self_attn)", "layer")
    _label(ax, x + 2.0, 3.55, r"weights $(B, H, L, L)$", fontsize=8)
    _arrow(ax, (x, 4.15), (x, 4.92))
    _op(ax, x, 5.2, "+")
    residual(1.2, 5.2)  # from below the first LayerNorm around it and the attention to the sum
    _arrow(ax, (x, 5.48), (x, 6.25))
    _box(ax, x, 6.6, 3.2, 0.7, "LayerNorm  (norm2)", "norm")
    _arrow(ax, (x, 6.95), (x, 7.45))
    _box(ax, x, 8.1, 3.6, 1.3, FEED_FORWARD, "layer", fontsize=8)
    _arrow(ax, (x, 8.75), (x, 9.42))
    _op(ax, x, 9.7, "+")
    residual(5.85, 9.7)
    _arrow(ax, (x, 9.98), (x, 10.6))
    _label(ax, x + 0.2, 10.3, r"$y$: $(B, L, d)$, to the next block", fontsize=9)
    _line(ax, (6.6, 1.6), (6.9, 1.6), (6.9, 9.9), (6.6, 9.9))
    _label(ax, 7.05, 5.6, "repeated\nN times", fontsize=9)
    return fig


def message_passing() -> plt.Figure:
    """One round of message passing: node i collects a message from each neighbour j (and
    itself), aggregates them and updates its features; a node two hops away sends nothing."""
    fig, ax = _canvas(12.0, 6.5, "Message passing: one GCN layer, seen from node i")
    centre = (3.2, 3.2)
    neighbours = {
        f"j{k}": (centre[0] + 2.0 * math.cos(a), centre[1] + 2.0 * math.sin(a))
        for k, a in enumerate((math.radians(150), math.radians(45), math.radians(-60)), start=1)
    }
    far = (neighbours["j2"][0] + 1.7, neighbours["j2"][1] + 0.2)
    _line(ax, neighbours["j2"], far, colour="lightgray")
    ax.add_patch(Circle(far, 0.38, facecolor="#eeeeee", edgecolor="gray"))
    ax.text(*far, "k", ha="center", va="center", fontsize=10, color="gray")
    _label(ax, far[0] - 0.95, far[1] + 0.5, "2 hops: not\nin this layer", fontsize=7, color="gray")
    for name, (x, y) in neighbours.items():
        _arrow(ax, (x, y), centre, shrink=27, colour="tab:blue")
        ax.add_patch(Circle((x, y), 0.38, facecolor=COLOURS["data"], edgecolor="black"))
        ax.text(x, y, rf"$h_{{{name}}}$", ha="center", va="center", fontsize=9)
    ax.add_patch(Circle(centre, 0.45, facecolor=COLOURS["layer"], edgecolor="black", linewidth=1.5))
    ax.text(*centre, r"$h_i$", ha="center", va="center", fontsize=11)
    corner = 0.45 / math.sqrt(2)  # the self-loop leaves and enters the node's lower side
    _arrow(
        ax,
        (centre[0] - corner, centre[1] - corner),
        (centre[0] + corner, centre[1] - corner),
        colour="tab:blue",
        rad=1.6,
    )
    _label(ax, centre[0] - 1.6, centre[1] - 1.0, "self-loop", fontsize=8, color="tab:blue")
    _label(ax, 3.95, 2.4, r"message $m_{j \to i}$", fontsize=8, color="tab:blue")
    steps = [
        (
            7.2,
            5.2,
            "1. message: each neighbour j sends\n"
            r"$m_{j \to i} = \hat A_{ij}\, h_j W$,  "
            r"$\hat A_{ij} = 1/\sqrt{\tilde d_i \tilde d_j}$",
        ),
        (
            7.2,
            3.5,
            "2. aggregate: sum over $j \\in \\mathcal{N}(i) \\cup \\{i\\}$\n"
            r"$a_i = \sum_j m_{j \to i}$  (GAT: weights $\alpha_{ij}$ instead)",
        ),
        (7.2, 1.8, "3. update: $h_i' = \\sigma(a_i + b)$,\nthe same $W$ and $b$ at every node"),
    ]
    for x, y, text in steps:
        _box(ax, x + 1.85, y, 4.7, 1.15, text, "gate" if y < 2 else "layer", fontsize=8)
    _arrow(ax, (9.05, 4.6), (9.05, 4.1))
    _arrow(ax, (9.05, 2.9), (9.05, 2.4))
    _label(ax, 6.9, 0.35, "edge list: messages flow along (source j, target i) pairs", fontsize=8)
    return fig


def vae() -> plt.Figure:
    """A VAE's forward pass and its two loss terms: the encoder gives a Gaussian q(z | x), a
    sample z = mu + sigma * eps (the reparameterisation), the decoder gives p(x | z)."""
    fig, ax = _canvas(13.0, 6.0, "A variational autoencoder (VAE)")
    mid = 3.6
    _box(ax, 0.85, mid, 1.3, 1.3, "image $x$\n(784 pixels)", "data", fontsize=8)
    _arrow(ax, (1.5, mid), (2.05, mid))
    _funnel(ax, 2.1, 3.9, mid, 1.2, 0.55, "encoder\n" r"$q_\phi(z \mid x)$")
    for dy, text in ((0.75, r"$\mu$"), (-0.75, r"$\log \sigma^2$")):
        _arrow(ax, (3.9, mid + dy / 3), (4.55, mid + dy))
        _box(ax, 5.05, mid + dy, 0.95, 0.6, text, "data")
    _arrow(ax, (5.55, mid + 0.75), (6.25, mid + 0.15))
    _arrow(ax, (5.55, mid - 0.75), (6.25, mid - 0.15))
    _box(ax, 7.15, mid, 1.75, 0.85, r"$z = \mu + \sigma \odot \varepsilon$", "gate", fontsize=9)
    _box(ax, 7.15, 1.6, 1.75, 0.65, r"$\varepsilon \sim \mathcal{N}(0, I)$", "op", fontsize=9)
    _arrow(ax, (7.15, 1.95), (7.15, mid - 0.45))
    _label(ax, 6.35, 4.35, "reparameterisation", fontsize=8)
    _arrow(ax, (8.05, mid), (8.6, mid))
    _funnel(ax, 8.65, 10.45, mid, 0.55, 1.2, "decoder\n" r"$p_\theta(x \mid z)$")
    _arrow(ax, (10.5, mid), (11.05, mid))
    _box(ax, 11.95, mid, 1.65, 1.3, "reconstruction\n(784 logits)", "data", fontsize=8)
    _box(
        ax,
        5.05,
        0.75,
        3.1,
        0.8,
        r"KL$(q_\phi(z \mid x) \,\|\, \mathcal{N}(0, I))$",
        "loss",
        fontsize=8,
    )
    _arrow(ax, (5.05, mid - 1.05), (5.05, 1.17))
    _box(ax, 11.0, 1.1, 3.2, 0.8, r"reconstruction: $-\log p_\theta(x \mid z)$", "loss", fontsize=8)
    _arrow(ax, (11.95, mid - 0.65), (11.6, 1.52))
    _label(
        ax, 1.0, 5.5, r"loss = $-$ELBO = reconstruction + KL, averaged over the images", fontsize=9
    )
    return fig
