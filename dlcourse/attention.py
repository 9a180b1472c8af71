"""Helpers for the attention tutorial (T07): synthetic sequence tasks, copying PyTorch's attention
weights into a from-scratch module, attention-map figures, and measuring what attention costs.

None of this is the student's exercise. The measurements say how they measure:

- time: `torch.utils.benchmark.Timer` (warm-up, repeated blocks, the median; it synchronises
  CUDA and runs with the notebook's number of threads, not its default of one);
- peak memory on CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, less
  what was allocated before the call;
- peak memory on the CPU, which has no such counter: `torch.profiler` with `profile_memory=True`
  records every allocation and free of PyTorch's CPU allocator with its time; the largest value
  of their running sum is the peak of memory allocated during the call (tests/test_attention.py
  checks it against allocations of known size).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn as nn

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


def time_call(fn: Callable[[], object], min_run_time: float = 0.2) -> float:
    """Median seconds of one `fn()` call, from `torch.utils.benchmark` (warm-up included)."""
    # Importing torch.utils.benchmark imports cpp_extension, which logs on stderr on a machine
    # without CUDA that it found none (nbgrader would take the line for an error).
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        quiet.setLevel(level)

    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes allocated while `fn()` runs, above what was allocated before it.

    On CUDA from the caching allocator's counters; elsewhere from the CPU allocator's events
    recorded by torch.profiler (see the module's docstring). The result of `fn` is dropped
    inside the measured region, so it counts only while it is alive.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    if device.type != "cpu":
        raise ValueError(f"peak memory is measured on cuda or cpu, not {device.type}")
    from torch.profiler import ProfilerActivity, profile

    # Kineto, the profiler's backend, logs its start and stop on stderr (where nbgrader would
    # take them for an error) unless its log level is above every message's.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = _cpu_memory_events(prof)
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return int(peak)


def _cpu_memory_events(prof: torch.profiler.profile) -> list[tuple[int, int]]:
    """(time, bytes) of the CPU allocator's events, allocations positive and frees negative."""
    results = getattr(getattr(prof, "profiler", None), "kineto_results", None)
    if results is None:  # the profiler's raw events moved: tests/test_attention.py says so
        raise RuntimeError(f"torch {torch.__version__}: the profiler's memory events are not found")
    return sorted(
        (e.start_ns(), e.nbytes())
        for e in results.events()
        if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")
    )


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


def slope(lengths: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(value) against log(length): 2 means quadratic growth."""
    xs = [math.log(x) for x in lengths]
    ys = [math.log(max(y, 1e-30)) for y in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mx) ** 2 for x in xs)
    return num / den
