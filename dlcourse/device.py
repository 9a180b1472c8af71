"""One place that picks the device and makes runs repeatable.

Notebooks call these two functions in their setup cell and nothing else touches the flags; a
misspelt cuDNN attribute silently does nothing, so the flags are set here once and tested.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def get_device() -> torch.device:
    """CUDA, then Apple MPS, then CPU; `DLCOURSE_DEVICE=cpu|cuda|cuda:1|mps` overrides."""
    if forced := os.environ.get("DLCOURSE_DEVICE"):
        try:
            dev = torch.device(forced)
        except RuntimeError:
            raise RuntimeError(
                f"DLCOURSE_DEVICE={forced} is not a device name; use cpu, cuda, cuda:N or mps"
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"DLCOURSE_DEVICE={forced} but CUDA is not available here")
        if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
            raise RuntimeError(
                f"DLCOURSE_DEVICE={forced} but only {torch.cuda.device_count()} GPU(s) are visible"
            )
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"DLCOURSE_DEVICE={forced} but Apple MPS is not available here")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with `deterministic`, ask for deterministic kernels.

    Deterministic mode warns (rather than fails) on ops that have no deterministic version, so a
    student's notebook keeps running on any GPU.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this before its first call to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
