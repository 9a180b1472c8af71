"""Hidden tests for `positive_random_features` and `performer_attention` (grade cell
t07_attention_performer_check, 3 points).

With the grader's random rows w the results are deterministic, so they are compared with the
formulas written out here: phi(x) = exp(w x - |x|^2 / 2) / sqrt(m), and the attention as a
quadratic form normalised by rows (equal to the linear-time form up to rounding). The linear
form must never build an L x L matrix: its peak memory at L = 8192 is measured in the student's
process by torch.profiler's allocation events (bytes, not time)."""

import math

import torch

from dlcourse.grading import points
from dlcourse.grading.compare import close

GRADE_CELL = "t07_attention_performer_check"


def probe_call(ns, name, args):
    out = ns[name](*args)
    return out.detach() if isinstance(out, torch.Tensor) else repr(out)[:80]


def probe_performer_memory(ns, length, d, m):
    from dlcourse import measure

    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, length, d, generator=gen) * 0.5
    w = torch.randn(m, d, generator=gen)
    return measure.peak_memory_bytes(lambda: ns["performer_attention"](q, q, q, w))


def features(x, w):
    x, w = x.double(), w.double()
    return torch.exp(x @ w.T - 0.5 * (x**2).sum(-1, keepdim=True)) / math.sqrt(w.shape[0])


def quadratic(q, k, v, w):
    scale = q.shape[-1] ** -0.25
    a = features(q * scale, w) @ features(k * scale, w).transpose(-2, -1)
    return (a / a.sum(-1, keepdim=True)) @ v.double()


@points(1)
def test_features(student):
    """phi(x) for (2, 3, 5, 4) inputs and 7 random rows, positive, against the formula."""
    gen = torch.Generator().manual_seed(1301)
    x, w = torch.randn(2, 3, 5, 4, generator=gen), torch.randn(7, 4, generator=gen)
    got = student.run(probe_call, name="positive_random_features", args=[x, w])
    close(got, features(x, w), "positive_random_features(x (2, 3, 5, 4), w (7, 4))",
          "exp(w x - |x|^2 / 2) / sqrt(m)", atol=1e-6, rtol=1e-5)  # fmt: skip


@points(1)
def test_attention_values(student):
    """Cross-attention (L_q = 9, L_k = 13, d = 16, d_v = 5) with batch and head dimensions,
    against the same features as a normalised L_q x L_k matrix."""
    gen = torch.Generator().manual_seed(1302)
    q = torch.randn(2, 3, 9, 16, generator=gen) * 0.7
    k = torch.randn(2, 3, 13, 16, generator=gen) * 0.7
    v = torch.randn(2, 3, 13, 5, generator=gen)
    w = torch.randn(32, 16, generator=gen)
    got = student.run(probe_call, name="performer_attention", args=[q, k, v, w])
    what = "performer_attention(q (2, 3, 9, 16), k (2, 3, 13, 16), v (2, 3, 13, 5), w (32, 16))"
    close(got, quadratic(q, k, v, w), what, "the random-feature formula", atol=1e-5, rtol=1e-4)


@points(1)
def test_attention_memory_is_linear(student):
    """At L = 8192 (d = 16, m = 32) the peak memory stays below 5% of one L x L float32 matrix
    (256 MiB): the linear-time order of the products needs about 2 MiB."""
    peak = student.run(probe_performer_memory, length=8192, d=16, m=32)
    limit = 0.05 * 8192**2 * 4
    assert isinstance(peak, int) and peak < limit, (
        f"performer_attention at L = 8192 allocated {peak / 2**20:,.1f} MiB at its peak; "
        "compute phi(k)^T v first, never an L x L matrix "
        f"(limit {limit / 2**20:.1f} MiB, 5% of one)"
    )
