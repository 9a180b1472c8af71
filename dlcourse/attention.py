"""Helpers for the attention tutorial (T07): synthetic sequence tasks, copying PyTorch's attention
weights into a from-scratch module, attention-map figures, and what attention costs in time and
peak memory as the sequence grows (measured with `dlcourse.measure`, which says how).

None of this is the student's exercise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn as nn

from dlcourse.measure import peak_memory_bytes, time_call

TASKS = ("reverse", "sort")


def sequence_task(
    task: str,
    n: int,
    length: int,
    vocab: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random int64 sequences of `length` tokens in [0, vocab) and their targets, one target
    token per position: the sequence reversed (`"reverse"`) or sorted ascending (`"sort"`)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    x = torch.randint(0, vocab, (n, length), generator=generator)
    y = x.flip(1) if task == "reverse" else x.sort(dim=1).values
    return x, y


def copy_from_torch_mha(mine: nn.Module, reference: nn.MultiheadAttention) -> None:
    """Copy `nn.MultiheadAttention`'s weights into a module with `q_proj`, `k_proj`, `v_proj`
    and `out_proj` (each `nn.Linear(E, E)`): PyTorch stacks the three input projections in one
    (3E, E) `in_proj_weight`, queries first, then keys, then values."""
    e = reference.embed_dim
    if reference.in_proj_weight is None:
        raise ValueError("the reference has separate q/k/v projections (kdim or vdim != embed_dim)")
    with torch.no_grad():
        for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
            layer = getattr(mine, name)
            layer.weight.copy_(reference.in_proj_weight[i * e : (i + 1) * e])
            layer.bias.copy_(reference.in_proj_bias[i * e : (i + 1) * e])
        mine.out_proj.weight.copy_(reference.out_proj.weight)
        mine.out_proj.bias.copy_(reference.out_proj.bias)


def copy_from_torch_encoder_layer(mine: nn.Module, reference: nn.TransformerEncoderLayer) -> None:
    """Copy an `nn.TransformerEncoderLayer`'s weights into a block with the same attribute names
    (`self_attn`, `linear1`, `linear2`, `norm1`, `norm2`), whose `self_attn` is a from-scratch
    attention module with `q_proj`, `k_proj`, `v_proj`, `out_proj`."""
    copy_from_torch_mha(mine.self_attn, reference.self_attn)
    for name in ("linear1", "linear2", "norm1", "norm2"):
        getattr(mine, name).load_state_dict(getattr(reference, name).state_dict())


def show_attention(
    weights: torch.Tensor,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    title: str = "",
    head_titles: Sequence[str] | None = None,
    xlabel: str = "key position",
    ylabel: str = "query position",
) -> plt.Figure:
    """Attention weights of one example as heat maps: (Lq, Lk) or one panel per head (H, Lq, Lk).

    Rows are queries and columns keys, so row i shows where query i looks; each row sums to 1.
    """
    w = weights.detach().float().cpu()
    if w.dim() == 2:
        w = w[None]
    if w.dim() != 3:
        raise ValueError(f"expected (Lq, Lk) or (H, Lq, Lk) weights, got shape {tuple(w.shape)}")
    heads, lq, lk = w.shape
    side = min(4.0, 0.25 * max(lq, lk) + 1.5)
    fig, axes = plt.subplots(
        1, heads, figsize=(side * heads + 1.0, side + 0.6), squeeze=False, layout="constrained"
    )
    for h, ax in enumerate(axes[0]):
        im = ax.imshow(w[h].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if head_titles is not None:
            ax.set_title(head_titles[h])
        elif heads > 1:
            ax.set_title(f"head {h}")
        if key_labels is not None:
            ax.set_xticks(range(lk), key_labels, fontsize=7)
        if query_labels is not None:
            ax.set_yticks(range(lq), query_labels, fontsize=7)
    fig.colorbar(im, ax=list(axes[0]), label="attention weight", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def attention_cost(
    implementations: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], object]],
    seq_lens: Sequence[int],
    batch: int = 1,
    heads: int = 4,
    head_dim: int = 64,
    device: torch.device | str = "cpu",
    min_run_time: float = 0.2,
) -> dict[str, dict[str, list[float]]]:
    """Time (median seconds) and peak memory (bytes) of each `implementation(q, k, v)` for
    random float32 (batch, heads, L, head_dim) inputs at every L in `seq_lens`, without
    gradients. Returns {name: {"seq_len": [...], "seconds": [...], "peak_bytes": [...]}}."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    out: dict[str, dict[str, list[float]]] = {
        name: {"seq_len": [], "seconds": [], "peak_bytes": []} for name in implementations
    }
    with torch.no_grad():
        for length in seq_lens:
            qkv = [
                torch.randn(batch, heads, length, head_dim, generator=gen).to(device)
                for _ in range(3)
            ]
            for name, fn in implementations.items():
                call = functools.partial(fn, *qkv)
                out[name]["seq_len"].append(length)
                out[name]["peak_bytes"].append(peak_memory_bytes(call, device))
                out[name]["seconds"].append(time_call(call, min_run_time))
            del qkv, call
    return out


def plot_attention_cost(
    cost: dict[str, dict[str, list[float]]],
    reference_bytes: Sequence[float] | None = None,
    reference_label: str = "one score matrix",
    title: str = "",
) -> plt.Figure:
    """Time and peak memory against sequence length on log-log axes, one line per
    implementation; `reference_bytes` (one per length) is drawn dashed on the memory panel."""
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for name, c in cost.items():
        ax_t.plot(c["seq_len"], [s * 1e3 for s in c["seconds"]], marker="o", label=name)
        ax_m.plot(c["seq_len"], [b / 2**20 for b in c["peak_bytes"]], marker="o", label=name)
    if reference_bytes is not None:
        lengths = next(iter(cost.values()))["seq_len"]
        ax_m.plot(lengths, [b / 2**20 for b in reference_bytes], "k--", label=reference_label)
    for ax, ylabel, what in (
        (ax_t, "time per call (ms)", "time"),
        (ax_m, "peak memory (MiB)", "peak memory"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{what} against sequence length")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig
