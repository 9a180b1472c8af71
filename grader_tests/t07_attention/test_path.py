"""Hidden tests for `max_path_length` (grade cell t07_attention_path_check, 1 point).

Expected values: 1 for self-attention, n - 1 for a recurrence, and for centred convolutions the
depth at which a stack of kernel-size-k convolutions first connects position 0 to position
n - 1, measured here with autograd as in the notebook's check."""

import torch
import torch.nn as nn

from dlcourse.grading import points

GRADE_CELL = "t07_attention_path_check"


def probe_path(ns, cases):
    out = []
    for layer, n, k in cases:
        try:
            out.append(ns["max_path_length"](layer, n, kernel_size=k))
        except ValueError:
            out.append("ValueError")
    return out


def measured_conv_depth(n, k):
    x = torch.ones(1, 1, n, requires_grad=True)
    h, depth = x, 0
    while True:
        conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        nn.init.constant_(conv.weight, 1.0)
        h, depth = conv(h), depth + 1
        (grad,) = torch.autograd.grad(h[0, 0, n - 1], x, retain_graph=True)
        if grad[0, 0, 0] != 0:
            return depth


@points(1)
def test_max_path_length(student):
    """Self-attention, recurrence and convolutions of kernel 3, 5 and 7 at several lengths, and a
    ValueError for an unknown layer."""
    cases = [("self-attention", 2, 3), ("self-attention", 500, 3), ("recurrent", 2, 3),
             ("recurrent", 77, 3), ("convolution", 2, 3), ("convolution", 50, 3),
             ("convolution", 50, 5), ("convolution", 64, 7), ("convolution", 65, 7),
             ("pooling", 10, 3)]  # fmt: skip
    got = student.run(probe_path, cases=cases)
    for (layer, n, k), value in zip(cases, got, strict=True):
        call = f"max_path_length({layer!r}, {n}, kernel_size={k})"
        if layer == "pooling":
            assert value == "ValueError", f"{call} returned {value!r}; it should raise a ValueError"
            continue
        want = {"self-attention": 1, "recurrent": n - 1}.get(layer) or measured_conv_depth(n, k)
        assert isinstance(value, int) and not isinstance(value, bool), (
            f"{call} returned {value!r}, expected a whole number"
        )
        assert value == want, f"{call} = {value}, expected {want}"
