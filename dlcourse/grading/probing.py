"""Helpers for hidden tests' probes, which run in the student process, and for reading a
student's source in the grader. Staff-only: hidden tests are not in the student kit.

Several tutorials grade an exercise that builds on an earlier one; the probe then runs it with
correct versions of the earlier functions, so one mistake costs one exercise's marks.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from typing import Any

import torch


def call_with(fn: Callable[..., Any], correct: dict[str, Callable[..., Any]],
              names: Iterable[str], *args: Any, **kwargs: Any) -> Any:  # fmt: skip
    """fn(*args, **kwargs) with the global `names` it calls replaced by `correct[name]` while it
    runs (in the module fn was defined in), put back afterwards."""
    names = tuple(names)
    definitions = getattr(fn, "__globals__", None)
    definitions = definitions if isinstance(definitions, dict) else {}
    saved = {k: definitions[k] for k in names if k in definitions}
    definitions.update({k: correct[k] for k in names})
    try:
        return fn(*args, **kwargs)
    finally:
        for k in names:
            definitions.pop(k, None)
        definitions.update(saved)


def output_and_gradient(
    fn: Callable[..., Any],
    x: torch.Tensor,
    grad_out: torch.Tensor | None,
    *args: Any,
    **kwargs: Any,
) -> dict[str, Any]:
    """fn(x, ...) for a probe: whether x was left unchanged, the output (or a description when it
    is not a tensor) and, given `grad_out`, d(sum(out * grad_out))/dx."""
    before = x.clone()
    leaf = x.clone().requires_grad_(grad_out is not None)
    out = fn(leaf, *args, **kwargs)
    reply: dict[str, Any] = {"unchanged": bool(torch.equal(leaf.detach(), before))}
    if not isinstance(out, torch.Tensor):
        reply["out"] = repr(out)[:80]
        return reply
    reply["out"] = out.detach()
    if grad_out is not None and out.requires_grad and out.shape == grad_out.shape:
        (out * grad_out).sum().backward()
        reply["dx"] = leaf.grad
    return reply


def assert_avoids(source: str, name: str, names: set[str], why: str) -> None:
    """The source of `name` uses none of `names` (and, with "import" in names, no import)."""
    tree = ast.parse(source or "")
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in names}
    used |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in names}
    if "import" in names and any(
        isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)
    ):
        used.add("an import")
    assert not used, f"{name} uses {', '.join(sorted(used))}: {why}"
