"""Comparing what a student's code returned with a reference, for hidden tests.

One assertion with one kind of message for every hidden test that checks numbers: a student who
loses a point reads what was compared, by how much it is off, where, and the tolerance, in the
same words in every tutorial (a bare `allclose` failure says none of that).
"""

from __future__ import annotations

from typing import Any

import torch


def close(
    got: Any,
    want: Any,
    what: str,
    source: str = "the expected values",
    *,
    atol: float = 1e-5,
    rtol: float = 0.0,
) -> None:
    """Assert `got` is within `atol + rtol * |want|` of `want`, element by element.

    `want` is a tensor or a number; `source` says where it came from ("F.conv2d"). For a tensor
    `got` must be a tensor of the same shape; for a number (or a one-element tensor), a number
    or a one-element tensor. NaN or infinite values in `got` fail, whatever the tolerance.
    """
    scalar = not isinstance(want, torch.Tensor) or want.dim() == 0
    if scalar:
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.reshape(())
        ok = isinstance(got, torch.Tensor) or (
            isinstance(got, int | float) and not isinstance(got, bool)
        )
        assert ok, f"{what} returned {got!r}, not a number"
    else:
        assert isinstance(got, torch.Tensor), (
            f"{what} returned a {type(got).__name__}, not a tensor"
        )
        assert tuple(got.shape) == tuple(want.shape), (
            f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        )
    g = torch.as_tensor(got).detach().double().cpu()
    w = torch.as_tensor(want).detach().double().cpu()
    if not bool(torch.isfinite(g).all()) and bool(torch.isfinite(w).all()):
        raise AssertionError(f"{what}: holds NaN or infinite values")
    diff = (g - w).abs().nan_to_num(nan=float("inf"))
    excess = diff - (atol + rtol * w.abs())
    if g.numel() == 0 or not bool((excess > 0).any()):
        return
    tolerance = f"{atol:g}" + (f" + {rtol:g} x |expected|" if rtol else "")
    if scalar:
        raise AssertionError(
            f"{what} is {g.item():.6g}, {source} gives {w.item():.6g} (tolerance {tolerance})"
        )
    worst = torch.unravel_index(excess.argmax(), g.shape)
    at = tuple(int(i) for i in worst)
    raise AssertionError(
        f"{what}: differs from {source} by up to {diff.max().item():.3g} (tolerance "
        f"{tolerance}); at index {at} it is {g[at].item():.6g}, {source} gives "
        f"{w[at].item():.6g}"
    )
