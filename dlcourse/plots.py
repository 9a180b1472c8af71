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
    """A grid of (N, 1, H, W) or (N, H, W) images in [0, 1], one optional title per image."""
    imgs = images.detach().cpu()
    if imgs.dim() == 4:
        imgs = imgs[:, 0]
    n = len(imgs)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.6 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(imgs[i], cmap=cmap, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_curves(
    curves: dict[str, Sequence[float]], xlabel: str = "epoch", ylabel: str = "loss", title: str = ""
) -> plt.Figure:
    """Several named series against a shared x axis (epochs or steps), e.g. train vs test loss."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, ys in curves.items():
        ax.plot(range(1, len(ys) + 1), ys, marker="o" if len(ys) < 30 else None, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
