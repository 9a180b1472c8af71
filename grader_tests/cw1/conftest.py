"""Static checks shared by the Part 1 modules: no Python loops, no torch.nn layers or functions.

They read the class's notebook source in the grader (`student.source`), so nothing the student
runs can hide a loop. The dynamic check (torch's layer functions wrapped to record calls while
the layer runs) covers helpers outside the class, which a static check of the class cannot see.
"""

import ast

import pytest
import torch

LOOPS = (
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)
FORBIDDEN = {
    "conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose2d",
    "max_pool1d", "max_pool2d", "max_pool2d_with_indices", "adaptive_max_pool2d",
    "linear", "bilinear", "batch_norm", "instance_norm",
    "Conv1d", "Conv2d", "Conv3d", "MaxPool2d", "AdaptiveMaxPool2d", "Linear", "LazyLinear",
    "BatchNorm1d", "BatchNorm2d", "LazyBatchNorm2d",
}  # fmt: skip
SETUP_METHODS = {"__init__", "extra_repr", "reset_parameters"}


def rule_violations(source: str) -> list[str]:
    """Loops in the class's computing methods and uses of torch's own layers, with line numbers."""
    cls = ast.parse(source).body[0]
    found = []
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if fn.name not in SETUP_METHODS and isinstance(node, LOOPS):
                found.append(f"a Python loop in {fn.name} (line {node.lineno} of the class)")
            is_self = isinstance(node, ast.Attribute) and (
                isinstance(node.value, ast.Name) and node.value.id == "self"
            )
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN and not is_self:
                found.append(f"`.{node.attr}` in {fn.name} (line {node.lineno} of the class)")
            if isinstance(node, ast.Name) and node.id in FORBIDDEN and node.id[0].islower():
                found.append(f"`{node.id}` in {fn.name} (line {node.lineno} of the class)")
    return found


def probe_torch_layers_called(ns, cls_name, args, x):
    """Build ns[cls_name](*args), run forward and backward; the torch layer functions called."""
    targets = [(torch.nn.functional, n) for n in ("conv2d", "max_pool2d", "linear", "batch_norm")]
    targets += [
        (torch, n) for n in ("conv2d", "max_pool2d", "batch_norm", "max_pool2d_with_indices")
    ]
    targets += [(torch.nn.functional, "max_pool2d_with_indices"), (torch, "convolution")]
    called, saved = [], []

    def spy(owner, name):
        original = getattr(owner, name)

        def wrapper(*a, **k):
            called.append(name)
            return original(*a, **k)

        saved.append((owner, name, original))
        setattr(owner, name, wrapper)

    for owner, name in targets:
        if hasattr(owner, name):
            spy(owner, name)
    try:
        m = ns[cls_name](*args)
        x = x.clone().requires_grad_(True)
        m(x).sum().backward()
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
    return sorted(set(called))


@pytest.fixture
def check_rules(student):
    """Assert that class `name` follows Part 1's rules: statically, then by running it once."""

    def check(name: str, args: tuple, x: torch.Tensor) -> None:
        problems = rule_violations(student.source(name))
        assert not problems, f"{name} breaks Part 1's rules: " + "; ".join(problems[:5])
        called = student.run(probe_torch_layers_called, cls_name=name, args=list(args), x=x)
        assert not called, f"{name} calls torch's own layer functions: {', '.join(called)}"

    return check
