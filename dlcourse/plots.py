"""Figures the notebooks share: image grids and training curves, with titles and labelled axes."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch


def show_images(
    images: torch.Tensor,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    suptitle: str | None = None,
    cmap: str = "gray",
) -> plt.Figure:
    """A grid of (N, 1, H, W) or (N, H, W) images in [0, 1], one optional title per image.

    Each row is made taller by the height of its titles (two-line titles such as
    "Shirt\\n-> Coat" included) and the layout is constrained, so a title never covers the image
    above it.
    """
    imgs = images.detach().cpu()
    if imgs.dim() == 4:
        imgs = imgs[:, 0]
    n = len(imgs)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    lines = max((str(t).count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    height = nrows * (1.4 + 0.18 * lines) + (0.4 if suptitle else 0.0)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.4 * ncols, height), squeeze=False, layout="constrained"
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(imgs[i], cmap=cmap, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_curves(
    curves: dict[str, Sequence[float]],
    xlabel: str = "epoch",
    ylabel: str = "loss",
    title: str = "",
    x: dict[str, Sequence[float]] | None = None,
) -> plt.Figure:
    """Several named series against a shared x axis (epochs or steps), e.g. train vs test loss.

    Without `x` the points sit at 1, 2, 3, ...; `x` gives positions per series (for example
    fractional epochs, so curves logged several times an epoch line up with per-epoch ones).
    """
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, ys in curves.items():
        xs = list(x[name]) if x and name in x else list(range(1, len(ys) + 1))
        ax.plot(xs, ys, marker="o" if len(ys) < 30 else None, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    cm: torch.Tensor, classes: Sequence[str], title: str = "Confusion matrix"
) -> plt.Figure:
    """Counts with true classes as rows, predicted as columns (as `metrics.confusion_matrix`)."""
    counts = cm.detach().cpu()
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(counts, cmap="Blues")
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, classes)
    threshold = counts.max().item() / 2
    for i in ticks:
        for j in ticks:
            value = int(counts[i, j])
            ax.text(j, i, value, ha="center", va="center", fontsize=7,
                    color="white" if value > threshold else "black")  # fmt: skip
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="images")
    fig.tight_layout()
    return fig


def show_feature_maps(
    fmap: torch.Tensor, title: str = "", max_channels: int = 16, ncols: int = 8
) -> plt.Figure:
    """The first channels of one image's (C, H, W) activations, each scaled to [0, 1] on its own.

    Channels differ in scale by orders of magnitude; a shared colour scale would show most as blank.
    """
    maps = fmap.detach().cpu()[:max_channels].float()
    lo = maps.amin(dim=(1, 2), keepdim=True)
    hi = maps.amax(dim=(1, 2), keepdim=True)
    scaled = (maps - lo) / (hi - lo).clamp_min(1e-8)
    return show_images(scaled, [f"channel {c}" for c in range(len(maps))], ncols, suptitle=title)


def image_grid(
    images: torch.Tensor,
    nrow: int = 16,
    title: str = "",
    value_range: tuple[float, float] = (0.0, 1.0),
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """Many (N, 1, H, W) images tiled into one picture (one imshow, so 256 samples draw fast).

    `value_range` is what the images span: (0, 1) for VAE means, (-1, 1) for DCGAN samples.
    """
    from torchvision.utils import make_grid

    lo, hi = value_range
    imgs = (images.detach().cpu().float() - lo) / (hi - lo)
    grid = make_grid(imgs.clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    if ax is None:
        side = min(0.45 * nrow, 9.0)
        fig, ax = plt.subplots(figsize=(side, side * grid.shape[1] / grid.shape[2] + 0.4))
    else:
        fig = ax.figure
    ax.imshow(grid[0], cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
    return fig
