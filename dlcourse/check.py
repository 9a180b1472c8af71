"""Self-checks for the notebooks: one printed line per check, and a message whenever one fails.

A bare `assert` leaves a student with `AssertionError` and nothing to go on. Every function here
prints one line, `PASS name: measured ..., expected ... (tolerance ...)` or the same with `FAIL`,
and on failure raises `AssertionError` carrying that line, so a failing check cell always says what
was measured and what was expected. Lines go to stdout: nbgrader zeroes a test cell that writes to
stderr.

Only torch and numpy are imported, so the module also works in a bare Colab runtime.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["after_exercise", "answer", "close", "equal", "grad", "in_range", "shape", "true"]

_MAX_SHOWN = 8  # tensors with more elements are summarised by their largest difference


def _fmt(value: Any) -> str:
    """A short, readable form of a number, tensor, array, shape or anything else."""
    if isinstance(value, torch.Tensor | np.ndarray):
        t = torch.as_tensor(value).detach().cpu()
        if t.numel() == 1:
            return _fmt(t.item())
        if t.numel() <= _MAX_SHOWN:
            return str([_fmt(v) for v in t.flatten().tolist()]).replace("'", "")
        return f"tensor of shape {tuple(t.shape)}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, torch.Size):
        return str(tuple(value))
    return str(value)


def _report(name: str, ok: bool, measured: Any, expected: Any, tolerance: str = "") -> None:
    """Print the check's line; raise AssertionError with the same text when it failed.

    Checks return nothing: a check cell's last line would otherwise show a stray `True`, which
    nbgrader also tries to read as the cell's score."""
    line = (
        f"{'PASS' if ok else 'FAIL'} {name}: measured {_fmt(measured)}, expected {_fmt(expected)}"
    )
    if tolerance:
        line += f" ({tolerance})"
    print(line, flush=True)
    if not ok:
        raise AssertionError(line)


def true(name: str, condition: bool, measured: Any = None, expected: Any = True) -> None:
    """A yes/no property, reported with what was measured so a failure is never a bare assert."""
    return _report(name, bool(condition), condition if measured is None else measured, expected)


def shape(name: str, got: torch.Tensor | Sequence[int], expected: Sequence[int]) -> None:
    """A tensor's shape (or a shape) equals `expected`; shape bugs are the most common ones."""
    measured = tuple(got.shape) if hasattr(got, "shape") else tuple(got)
    return _report(f"{name} shape", measured == tuple(expected), measured, tuple(expected))


def in_range(name: str, value: float, low: float | None = None, high: float | None = None) -> None:
    """`low <= value <= high` (either bound may be None): accuracies, losses, counts."""
    value = float(value)
    ok = (low is None or value >= low) and (high is None or value <= high)
    bounds = {(False, False): f"between {low} and {high}", (False, True): f"at least {low}",
              (True, False): f"at most {high}", (True, True): "any value"}  # fmt: skip
    return _report(name, ok, value, bounds[(low is None, high is None)])


def close(name: str, got: Any, expected: Any, atol: float = 1e-5, rtol: float = 0.0) -> None:
    """Numbers or tensors agree elementwise: |got - expected| <= atol + rtol * |expected|.

    Small tensors are printed whole; for larger ones the line names the largest difference and
    where it is, which is usually enough to see a transposed or shifted result.
    """
    g = torch.as_tensor(got).detach().cpu().double()
    e = torch.as_tensor(expected).detach().cpu().double()
    tolerance = f"atol={atol:g}, rtol={rtol:g}"
    if g.shape != e.shape:
        return _report(f"{name} shape", False, tuple(g.shape), tuple(e.shape))
    if g.numel() == 0:
        return _report(name, True, "empty", "empty", tolerance)
    err = (g - e).abs()
    ok = bool(torch.all(err <= atol + rtol * e.abs()))
    if g.numel() <= _MAX_SHOWN:
        return _report(name, ok, g, e, f"largest difference {err.max().item():.2g}, {tolerance}")
    idx = tuple(int(i) for i in np.unravel_index(int(err.argmax()), tuple(g.shape)))
    measured = (
        f"largest difference {err.max().item():.2g} over {g.numel()} elements, "
        f"at index {idx}: {g[idx].item():.6g}"
    )
    return _report(name, ok, measured, f"{e[idx].item():.6g} there", tolerance)


def equal(name: str, got: Any, expected: Any) -> None:
    """Exact equality of numbers or tensors (integer results, indices, bit-identical resumes)."""
    if isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor):
        if got.dtype != expected.dtype:
            return _report(f"{name} dtype", False, got.dtype, expected.dtype)
        return close(name, got, expected, atol=0.0)
    return _report(name, got == expected, got, expected, "exact")


def _projected_grads(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    wrt: Sequence[torch.Tensor],
    seed: int,
) -> list[torch.Tensor]:
    """Gradients of <fn(*inputs), r> for a fixed random r, w.r.t. the inputs and `wrt`."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    targets = leaves + list(wrt)
    grads = torch.autograd.grad((out * r.to(out.device)).sum(), targets, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, targets, strict=True)]


def _numerical_grads(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    wrt: Sequence[torch.Tensor],
    seed: int,
    eps: float = 1e-6,
) -> list[torch.Tensor]:
    """Central differences of <fn(*inputs), r>, element by element (use small double tensors)."""
    xs = [x.detach().clone() for x in inputs]
    with torch.no_grad():
        out = fn(*xs)
        r = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
        grads = []
        for t in xs + list(wrt):
            g, flat = torch.zeros_like(t), t.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                plus = (fn(*xs) * r).sum().item()
                flat[i] = old - eps
                minus = (fn(*xs) * r).sum().item()
                flat[i] = old
                g.view(-1)[i] = (plus - minus) / (2 * eps)
            grads.append(g)
    return grads


def grad(
    name: str,
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    reference: Callable[..., torch.Tensor] | None = None,
    wrt: Sequence[torch.Tensor] = (),
    ref_wrt: Sequence[torch.Tensor] = (),
    labels: Sequence[str] | None = None,
    atol: float = 1e-7,
    rtol: float = 1e-5,
    seed: int = 0,
) -> None:
    """Gradients of `fn` w.r.t. its inputs and the tensors in `wrt` (e.g. a layer's weights).

    With `reference` (e.g. the torch.nn layer, its own weights in `ref_wrt`) both are
    differentiated; without it, autograd is compared with central differences, as
    `torch.autograd.gradcheck` does. Use float64 tensors: in float32 the rounding error of a
    finite difference is larger than the bugs a gradient check is meant to find. Both sides
    are projected on the same random direction, so one backward pass covers every output.
    """
    got = _projected_grads(fn, inputs, wrt, seed)
    if reference is None:
        want, how = _numerical_grads(fn, inputs, wrt, seed), "central differences"
    else:
        want, how = _projected_grads(reference, inputs, ref_wrt, seed), "the reference"
    names = (
        list(labels)
        if labels
        else [f"input {i}" for i in range(len(inputs))] + [f"tensor {i}" for i in range(len(wrt))]
    )
    for label, g, w in zip(names, got, want, strict=True):
        close(f"{name}: gradient w.r.t. {label} vs {how}", g, w, atol=atol, rtol=rtol)


_FORMS: dict[str, Callable[[Any], bool]] = {
    "whole number": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "letter": lambda v: isinstance(v, str) and len(v.strip()) == 1 and v.strip().isalpha(),
}
_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def answer(namespace: Mapping[str, Any], name: str, form: str, count: int = 0) -> None:
    """The form of a quiz answer (`form` is "whole number", "number" or "letter"; `count`
    asks for a tuple of that many), never its value: the grader reads the answer from the
    notebook's source. An answer not given yet is a FAIL line that says what to write, not a
    bare NameError."""
    what = f"a {form}" if not count else f"a tuple of {_COUNTS.get(count, count)} {form}s"
    if name not in namespace:
        return _report(f"{name} not answered", False, "no answer yet", f"{name} = <{what}>")
    value, ok = namespace[name], _FORMS[form]
    if count:
        good = isinstance(value, tuple) and len(value) == count and all(map(ok, value))
    else:
        good = ok(value)
    return _report(f"{name} is {what}", good, repr(value), what)


@contextlib.contextmanager
def after_exercise(exercise: int | str) -> Iterator[None]:
    """Run a demonstration that uses exercise `exercise`'s code, or say in one line to finish it.

    A cell that calls an unfinished exercise would otherwise show a traceback (a
    NotImplementedError, or a NameError for what the exercise defines) that is not about
    the cell itself. Any other error is the demonstration's own and shows as usual.
    """
    try:
        yield
    except (NotImplementedError, NameError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        print(f"Finish exercise {exercise} first: this cell uses it ({detail}).", flush=True)
