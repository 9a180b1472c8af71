"""Figures and one measurement shared by the convolution tutorials (T01 signals, T02 padding and
strides, T03 CNNs).

- `show_filter_bank`: each kernel, with its values written in, above what it does to an image.
- `show_kernel_positions`: where a kernel lands on a (padded) input for every output pixel, for
  a given stride, padding and dilation, and how often each input pixel is used.
- `receptive_field_map`: which input pixels reach the centre output pixel of a stack of
  convolutions and pooling layers, and through how many paths (`support_width` reads the width).
- `show_receptive_field`: the same along one axis, drawn as a diagram: one row of units per
  layer, the units that reach the top unit highlighted and joined to the units they read.

Nothing here is a tutorial's exercise: the notebooks ask students for the formulas (output
sizes, receptive fields) and the filters; these draw and measure what the formulas predict.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle

__all__ = [
    "receptive_field_map", "show_filter_bank", "show_kernel_positions", "show_receptive_field",
    "support_width",
]  # fmt: skip

_MAX_ANNOTATED = 7  # kernels up to 7x7 get their values written in each cell


def _value_text(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}".lstrip("0").replace("-0.", "-.")


def show_filter_bank(
    kernels: Sequence[torch.Tensor] | torch.Tensor,
    responses: Sequence[torch.Tensor] | torch.Tensor,
    names: Sequence[str] | None = None,
    image: torch.Tensor | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Kernels (each (kh, kw)) in the top row, their (H, W) responses below, one column each.

    Kernels are drawn on a red-blue scale centred at 0 (red positive, blue negative) with their
    values written in when they are at most 7x7. A response with negative values is drawn in
    grey centred at 0 (mid-grey is 0, so edges of both signs show); a non-negative one from its
    minimum (black) to its maximum (white). With `image`, the input comes first. Signed
    responses saturate at the 99.5th percentile of their magnitude, so a few extreme pixels do
    not grey out the rest.
    """
    kernels = [torch.as_tensor(k).detach().cpu().float() for k in kernels]
    responses = [torch.as_tensor(r).detach().cpu().float() for r in responses]
    if len(kernels) != len(responses):
        raise ValueError(f"{len(kernels)} kernels but {len(responses)} responses")
    names = list(names) if names is not None else [f"kernel {i}" for i in range(len(kernels))]
    offset = 1 if image is not None else 0
    ncols = len(kernels) + offset
    fig, axes = plt.subplots(
        2, ncols, figsize=(2.4 * ncols, 5.2), squeeze=False, layout="constrained",
        gridspec_kw={"height_ratios": [1, 1.6]},
    )  # fmt: skip
    if image is not None:
        axes[0, 0].axis("off")
        axes[1, 0].imshow(torch.as_tensor(image).detach().cpu().numpy(), cmap="gray")
        axes[1, 0].set_title("input image", fontsize=9)
    for c, (k, r, name) in enumerate(zip(kernels, responses, names, strict=True), start=offset):
        ax = axes[0, c]
        lim = max(float(k.abs().max()), 1e-12)
        ax.imshow(k.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        if max(k.shape) <= _MAX_ANNOTATED:
            for (i, j), v in zip(torch.cartesian_prod(*map(torch.arange, k.shape)).tolist(),
                                 k.flatten().tolist(), strict=True):  # fmt: skip
                ax.text(
                    j,
                    i,
                    _value_text(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(v) > 0.6 * lim else "black",
                )
        ax.set_title(f"{name}\n{k.shape[0]}x{k.shape[1]} kernel", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax = axes[1, c]
        if r.min() < 0:
            # A few extreme pixels would grey out the rest: black and white are set at the
            # 99.5th percentile of |response|.
            flat = r.abs().flatten()
            flat = flat[torch.linspace(0, len(flat) - 1, min(len(flat), 100_000)).long()]
            lim = max(float(torch.quantile(flat, 0.995)), 1e-12)
            ax.imshow(r.numpy(), cmap="gray", vmin=-lim, vmax=lim)
            scale = f"grey = 0, black/white at ±{lim:.2g}"
        else:
            ax.imshow(r.numpy(), cmap="gray")
            scale = f"range {float(r.min()):.2g} to {float(r.max()):.2g}"
        ax.set_title(f"response {tuple(r.shape)}\n{scale}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for row, label in ((0, "kernel row i"), (1, "image row")):
        axes[row, 0].set_ylabel(label)
    axes[0, offset].set_xlabel("kernel column j")
    axes[1, offset].set_xlabel("image column")
    if title:
        fig.suptitle(title)
    return fig


def _windows(size: int, kernel_size: int, stride: int, padding: int, dilation: int) -> list[int]:
    """Start (in padded coordinates) of every window along one axis, found by sliding it."""
    span = dilation * (kernel_size - 1) + 1
    starts, start = [], 0
    while start + span <= size + 2 * padding:
        starts.append(start)
        start += stride
    return starts


def show_kernel_positions(
    size: int,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    max_panels: int = 16,
    title: str | None = None,
) -> plt.Figure:
    """Where a square kernel lands on a `size` x `size` input, one small panel per output pixel.

    Each panel shows the padded input (padding cells grey, marked 0), the input pixels the
    kernel multiplies for that output pixel (blue, one per kernel tap, so dilation leaves gaps)
    and the window's outline. A last panel counts how many output pixels use each input pixel:
    a stride smaller than the kernel makes some pixels count more than others. Output pixels
    are taken row by row, at most `max_panels` of them.
    """
    starts = _windows(size, kernel_size, stride, padding, dilation)
    if not starts:
        raise ValueError(
            f"a {kernel_size}x{kernel_size} kernel (dilation {dilation}) does not fit in a "
            f"{size}x{size} input with padding {padding}"
        )
    n = size + 2 * padding
    out = len(starts)
    positions = [(i, j) for i in range(out) for j in range(out)]
    shown = positions[:max_panels]
    taps = [dilation * t for t in range(kernel_size)]
    coverage = torch.zeros(n, n, dtype=torch.int64)
    for i, j in positions:
        for a in taps:
            for b in taps:
                coverage[starts[i] + a, starts[j] + b] += 1
    # Panels sit as the output pixels do (one row of panels per output row) when that fits;
    # the last column holds the count of uses.
    ncols = out + 1 if out <= 5 else 6
    nrows = -(-len(shown) // out) if out <= 5 else -(-(len(shown) + 1) // ncols)
    side = 0.18 * n + 0.9
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(side * ncols, (side + 0.35) * nrows), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    span = dilation * (kernel_size - 1) + 1

    def grid(ax: plt.Axes) -> None:
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for r in range(n):
            for c in range(n):
                pad = not (padding <= r < padding + size and padding <= c < padding + size)
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="0.82" if pad else
                                       "white", edgecolor="0.6", linewidth=0.5))  # fmt: skip
                if pad and n <= 12:
                    ax.text(c, r, "0", ha="center", va="center", fontsize=6, color="0.45")

    if out <= 5:
        panels = [axes[k // out, k % out] for k in range(len(shown))]
        count_ax = axes[0, out]
    else:
        panels = list(axes.flat)[: len(shown)]
        count_ax = axes.flat[len(shown)]
    for ax, (i, j) in zip(panels, shown, strict=True):
        grid(ax)
        r0, c0 = starts[i], starts[j]
        for a in taps:
            for b in taps:
                ax.add_patch(Rectangle((c0 + b - 0.5, r0 + a - 0.5), 1, 1, facecolor="tab:blue",
                                       alpha=0.75, edgecolor="none"))  # fmt: skip
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), span, span, fill=False,
                               edgecolor="tab:red", linewidth=1.5))  # fmt: skip
        ax.set_title(f"output ({i}, {j})", fontsize=8)
    ax = count_ax
    grid(ax)
    im = ax.imshow(coverage.numpy(), cmap="Oranges", vmin=0, extent=(-0.5, n - 0.5, n - 0.5, -0.5),
                   alpha=0.85, zorder=3)  # fmt: skip
    if n <= 12:
        for r in range(n):
            for c in range(n):
                ax.text(c, r, str(int(coverage[r, c])), ha="center", va="center", fontsize=6,
                        zorder=4)  # fmt: skip
    ax.set_title("uses of each pixel", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.7)
    for ax in axes.flat:
        if ax is not count_ax and all(ax is not p for p in panels):
            ax.axis("off")
    axes[0, 0].set_xlabel("column (padded input)", fontsize=7)
    axes[0, 0].set_ylabel("row (padded input)", fontsize=7)
    more = ""
    if len(shown) < len(positions):
        more = f", first {len(shown)} of {len(positions)} outputs"
    fig.suptitle(
        title
        or f"{kernel_size}x{kernel_size} kernel, stride {stride}, padding {padding}, dilation "
        f"{dilation} on a {size}x{size} input: {out}x{out} output{more}"
    )
    return fig


def receptive_field_map(net: nn.Module, size: int = 64, in_channels: int | None = None):
    """How many paths lead from each input pixel to the centre output pixel of `net`.

    `net` is a stack of convolutions, pooling layers, ReLUs, batch-norms and additions (skip
    connections) that maps images to images. It is measured on a copy whose convolution weights
    are all positive (1 / fan-in), biases zero, batch-norms in evaluation mode and max-pooling
    replaced by average pooling over the same windows (max-pooling passes a gradient to one
    pixel of each window; the window is what the receptive field counts). Then every path
    carries a positive gradient, so the gradient of the centre output with respect to an input
    of ones is non-zero exactly on the receptive field, and its size is the number of paths
    (the "effective" receptive field: pixels near the centre count more).

    Returns a (size, size) tensor: the gradient summed over input channels.
    """
    probe = copy.deepcopy(net).cpu().float().eval()

    def linearise(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(module, name, nn.AvgPool2d(child.kernel_size, child.stride,
                                                   child.padding, child.ceil_mode))  # fmt: skip
            else:
                linearise(child)

    linearise(probe)
    first = None
    for m in probe.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            first = first or m
            with torch.no_grad():
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()
            m.reset_running_stats()
    if in_channels is None:
        in_channels = first.in_channels if first is not None else 1
    x = torch.ones(1, in_channels, size, size, requires_grad=True)
    y = probe(x)
    if y.dim() != 4:
        raise ValueError(f"receptive_field_map needs a net that returns images, got {y.dim()}-D")
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    return x.grad[0].sum(dim=0)


def support_width(field: torch.Tensor) -> int:
    """Width in pixels of the non-zero part of a map such as `receptive_field_map`'s (columns)."""
    cols = (field.abs().sum(dim=0) > 0).nonzero()
    return 0 if len(cols) == 0 else int(cols.max() - cols.min() + 1)


_MAX_DRAWN_FIELD = 64  # input units a receptive-field diagram can show legibly


def _field_units(layers: Sequence[Sequence[int]]) -> list[set[int]]:
    """For each level (0 = input, last = the top layer's output), the units the top unit at index
    0 depends on, found by following every kernel tap down the stack (not by a formula)."""
    levels = [{0}]
    for k, s, d in reversed([(tuple(layer) + (1,))[:3] for layer in layers]):
        levels.append({s * u + d * t for u in levels[-1] for t in range(k)})
    return levels[::-1]


def show_receptive_field(
    layers: Sequence[Sequence[int]],
    names: Sequence[str] | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Which input units one unit at the top of a stack of layers sees, along one axis.

    `layers` are `(k, s)` or `(k, s, d)` tuples (kernel size, stride, dilation), input side
    first; pooling layers count like convolutions. One row of units per level, each drawn at
    the centre of the input region it covers, so strides show as wider spacing. The units that
    reach the top unit are filled and joined to the units they read; a few neighbours on each
    side are drawn hollow. The left margin names the rows, the right margin gives each level's
    receptive field and jump (the input distance between neighbouring units), and a bracket
    under the input marks the top unit's receptive field.
    """
    layers = [(tuple(layer) + (1,))[:3] for layer in layers]
    if not layers:
        raise ValueError("show_receptive_field needs at least one layer")
    names = list(names) if names is not None else [f"k={k}, s={s}, d={d}" for k, s, d in layers]
    if len(names) != len(layers):
        raise ValueError(f"{len(layers)} layers but {len(names)} names")
    units = _field_units(layers)
    field = max(units[0]) - min(units[0]) + 1
    if field > _MAX_DRAWN_FIELD:
        raise ValueError(
            f"the receptive field is {field} units wide; the diagram draws at most "
            f"{_MAX_DRAWN_FIELD} (use receptive_field_map for larger ones)"
        )
    # Receptive field r and jump j of one unit at each level (the recurrence of T03, used here
    # only to place the units: unit i of level l covers input i * j .. i * j + r - 1).
    rf, jump = [1], [1]
    for k, s, d in layers:
        rf.append(rf[-1] + d * (k - 1) * jump[-1])
        jump.append(jump[-1] * s)

    def centre(level: int, i: int) -> float:
        return i * jump[level] + (rf[level] - 1) / 2

    margin = 2
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * (field + 2 * margin) + 4.5),
                                    1.1 * len(layers) + 1.9), layout="constrained")  # fmt: skip
    edges = []
    for level in range(1, len(units)):
        k, s, d = layers[level - 1]
        for u in units[level]:
            for t in range(k):
                below = s * u + d * t
                edges.append([(centre(level - 1, below), level - 1), (centre(level, u), level)])
    ax.add_collection(LineCollection(edges, colors="tab:blue", linewidths=0.8, alpha=0.5))
    lo, hi = -margin - 0.5, field + margin - 0.5
    for level, used in enumerate(units):
        first = int((lo - (rf[level] - 1) / 2) // jump[level]) - 1
        last = int((hi - (rf[level] - 1) / 2) // jump[level]) + 1
        shown = [i for i in range(first, last + 1) if lo <= centre(level, i) <= hi]
        xs = [centre(level, i) for i in shown]
        filled = [i in used for i in shown]
        ax.scatter(xs, [level] * len(xs), s=70, zorder=3, edgecolors="0.3",
                   c=["tab:orange" if f else "white" for f in filled])  # fmt: skip
        label = "input" if level == 0 else names[level - 1]
        ax.text(lo - 0.8, level, label, ha="right", va="center", fontsize=9)
        ax.text(hi + 0.8, level, f"r = {rf[level]}, jump {jump[level]}", ha="left", va="center",
                fontsize=8, color="0.3")  # fmt: skip
    ax.annotate("", xy=(-0.4, -0.45), xytext=(field - 0.6, -0.45),
                arrowprops={"arrowstyle": "|-|", "color": "tab:orange", "lw": 1.5})  # fmt: skip
    ax.text((field - 1) / 2, -0.75, f"receptive field: {field} input units", ha="center",
            va="top", fontsize=9, color="tab:orange")  # fmt: skip
    ax.set_xlim(lo - 0.5, hi + 0.5)
    ax.set_ylim(-1.3, len(layers) + 0.5)
    ax.axis("off")
    ax.set_title(title or f"Receptive field of one unit after {len(layers)} layers: {field} units")
    return fig
