"""Hidden tests for `apply_rotary` (grade cell t07_attention_rotary_check, 3 points).

The expected values are each position's block-diagonal rotation matrix, built here from 2 x 2
blocks R(p theta_i) with theta_i = base^(-2i/d), applied to the input; and the two properties the
derivation gives: scores depend only on the offset, and lengths are kept."""

import math

import torch

from dlcourse.grading import points
from dlcourse.grading.compare import close

GRADE_CELL = "t07_attention_rotary_check"


def probe_rotary(ns, x, base=None, grad_out=None):
    from dlcourse.grading.probing import output_and_gradient

    kwargs = {} if base is None else {"base": base}
    return output_and_gradient(ns["apply_rotary"], x, grad_out, **kwargs)


def rotations(length, d, base=10000.0):
    """(L, d, d): the rotation of each position, pairs (2i, 2i + 1) at angle p * base^(-2i/d)."""
    mats = []
    for p in range(length):
        blocks = []
        for i in range(d // 2):
            a = p * base ** (-2 * i / d)
            blocks.append(torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]],
                                       dtype=torch.float64))  # fmt: skip
        mats.append(torch.block_diag(*blocks))
    return torch.stack(mats)


def reference(x, base=10000.0):
    r = rotations(x.shape[-2], x.shape[-1], base)
    return torch.einsum("pij,...pj->...pi", r, x.double())


@points(1)
def test_rotary_values(student):
    """(2, 3, 7, 8) inputs (leading dimensions are batch and heads), and base=100 on (5, 4)."""
    gen = torch.Generator().manual_seed(1201)
    x = torch.randn(2, 3, 7, 8, generator=gen)
    reply = student.run(probe_rotary, x=x)
    close(reply["out"], reference(x), "apply_rotary on a (2, 3, 7, 8) input",
          "the block-diagonal rotation matrices", atol=1e-5, rtol=1e-5)  # fmt: skip
    x = torch.randn(5, 4, generator=gen)
    reply = student.run(probe_rotary, x=x, base=100.0)
    close(reply["out"], reference(x, 100.0), "apply_rotary(x, base=100.0)",
          "the block-diagonal rotation matrices", atol=1e-5, rtol=1e-5)  # fmt: skip


@points(1)
def test_rotary_relative_scores_and_lengths(student):
    """One query and one key repeated over 12 positions: scores[m + s, n + s] = scores[m, n];
    row lengths unchanged; the input is left as it was."""
    gen = torch.Generator().manual_seed(1202)
    q, k = torch.randn(2, 10, generator=gen)
    both = torch.stack([q.expand(12, 10), k.expand(12, 10)]).contiguous()
    reply = student.run(probe_rotary, x=both)
    assert reply["unchanged"], "apply_rotary changed its input"
    out = reply["out"]
    close(out, reference(both), "apply_rotary on repeated vectors", atol=1e-5, rtol=1e-5)
    scores = out[0].double() @ out[1].double().T
    close(scores[2:, 2:] - scores[:-2, :-2], torch.zeros(10, 10),
          "apply_rotary: scores[m + 2, n + 2] - scores[m, n]", "0 (scores depend on n - m only)",
          atol=1e-4)  # fmt: skip
    close(out.norm(dim=-1), both.norm(dim=-1), "apply_rotary: the lengths of the rows", atol=1e-4)


@points(1)
def test_rotary_gradient_and_float64(student):
    """The gradient is the transposed rotation applied to the incoming gradient; float64 stays
    float64."""
    gen = torch.Generator().manual_seed(1203)
    x = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    reply = student.run(probe_rotary, x=x, grad_out=grad_out)
    assert reply["out"].dtype == torch.float64, f"apply_rotary of float64 gave {reply['out'].dtype}"
    close(reply["out"], reference(x), "apply_rotary in float64", atol=1e-10, rtol=1e-10)
    assert reply.get("dx") is not None, "apply_rotary: no gradient reaches x"
    want = torch.einsum("pji,pj->pi", rotations(6, 6), grad_out)
    close(reply["dx"], want, "apply_rotary: gradient with respect to x", atol=1e-10, rtol=1e-10)
