"""How long a call takes and how much memory it allocates at its peak: what the tutorials show
when they compare implementations (naive vs fused attention in T07, dense vs sparse message
passing in T09). Shown, never marked: no check or grade depends on a timing.

- time: `torch.utils.benchmark.Timer` (warm-up, repeated blocks, the median; it synchronises
  CUDA and runs with the notebook's number of threads, not its default of one);
- peak memory on CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, less
  what was allocated before the call;
- peak memory on the CPU, which has no such counter: `torch.profiler` with `profile_memory=True`
  records every allocation and free of PyTorch's CPU allocator with its time; the largest value
  of their running sum is the peak of memory allocated during the call (tests/test_measure.py
  checks it against allocations of known size). It counts bytes, so unlike a time it does not
  depend on how busy the machine is.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence

import torch

__all__ = ["peak_memory_bytes", "slope", "time_call"]


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


def slope(lengths: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(value) against log(length): 2 means quadratic growth."""
    xs = [math.log(x) for x in lengths]
    ys = [math.log(max(y, 1e-30)) for y in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mx) ** 2 for x in xs)
    return num / den
