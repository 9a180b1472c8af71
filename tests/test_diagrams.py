"""dlcourse.diagrams: each figure renders, names the parts its tutorial talks about, keeps every
label inside the figure, and no label covers another."""

import itertools

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon

from dlcourse import diagrams

matplotlib.use("Agg")

# The parts each tutorial's text refers to (substrings of the labels; mathtext as written).
PARTS = {
    "lstm_cell": [
        r"$c_{t-1}$", r"$c_t$", r"$h_{t-1}$", r"$h_t$", r"$x_t$", "forget gate", "input gate",
        "candidate", "output gate", r"$c_t = f_t \odot c_{t-1} + i_t \odot g_t$",
        r"$h_t = o_t \odot \tanh(c_t)$", "tanh",
    ],
    "transformer_block": [
        "LayerNorm  (norm1)", "multi-head attention\n(self_attn)", "LayerNorm  (norm2)", "linear1",
        "linear2", "ReLU", "residual", "Q", "K", "V", "+", "repeated\nN times",
    ],
    "message_passing": [
        r"$h_i$", r"$h_{j1}$", r"$h_{j2}$", r"$h_{j3}$", "self-loop", "1. message",
        "2. aggregate", "3. update", "2 hops", r"message $m_{j \to i}$",
    ],
    "vae": [
        "encoder", "decoder", r"$\mu$", r"$\log \sigma^2$", r"$z = \mu + \sigma \odot \varepsilon$",
        r"$\varepsilon \sim \mathcal{N}(0, I)$", "reparameterisation", "KL", "reconstruction",
        "ELBO",
    ],
}  # fmt: skip
# Boxes, circles and polygons (the parts), and arrows (what flows between them).
MIN_SHAPES = {"lstm_cell": (9, 16), "transformer_block": (6, 11), "message_passing": (8, 6),
              "vae": (10, 10)}  # fmt: skip


def _texts(fig):
    return [t for t in fig.axes[0].texts if t.get_text().strip()]


@pytest.fixture(params=sorted(PARTS))
def drawn(request):
    fig = getattr(diagrams, request.param)()
    fig.canvas.draw()
    yield request.param, fig
    plt.close(fig)


def test_names_its_parts(drawn):
    name, fig = drawn
    labels = [t.get_text() for t in _texts(fig)]
    missing = [p for p in PARTS[name] if not any(p in label for label in labels)]
    assert not missing, f"{name}: no label holds {missing}; labels: {labels}"
    assert fig.axes[0].get_title(), f"{name} has no title"


def test_has_its_shapes_and_arrows(drawn):
    name, fig = drawn
    patches = fig.axes[0].patches
    shapes = [p for p in patches if isinstance(p, FancyBboxPatch | Circle | Polygon)]
    arrows = [p for p in patches if isinstance(p, FancyArrowPatch)]
    want_shapes, want_arrows = MIN_SHAPES[name]
    assert len(shapes) >= want_shapes, f"{name}: {len(shapes)} boxes and circles"
    assert len(arrows) >= want_arrows, f"{name}: {len(arrows)} arrows"


def test_labels_inside_the_figure_and_apart(drawn):
    name, fig = drawn
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
    outside = [
        text for text, b in boxes
        if b.x0 < figure_box.x0 or b.y0 < figure_box.y0 or b.x1 > figure_box.x1
        or b.y1 > figure_box.y1
    ]  # fmt: skip
    assert not outside, f"{name}: labels outside the figure: {outside}"
    overlapping = [
        (a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
        if box_a.overlaps(box_b)
    ]  # fmt: skip
    assert not overlapping, f"{name}: labels that cover each other: {overlapping}"
