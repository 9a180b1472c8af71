"""Hidden tests for `scaled_dot_product_attention` (grade cell t07_attention_sdpa_check, 4 points).

Outputs are compared with `F.scaled_dot_product_attention`, weights with the softmax of the
scaled scores computed here; d_k differs from d_v, so dividing by sqrt(d_v) shows.
"""

import math

import torch
import torch.nn.functional as F

from dlcourse.grading import points

GRADE_CELL = "t07_attention_sdpa_check"


def _qkv(gen, lead, lq, lk, dk, dv):
    return (torch.randn(*lead, lq, dk, generator=gen), torch.randn(*lead, lk, dk, generator=gen),
            torch.randn(*lead, lk, dv, generator=gen))  # fmt: skip


def _describe(q, k, v, mask=None):
    text = f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    return text + (f", mask {tuple(mask.shape)}" if mask is not None else "")


@points(2)
def test_output_matches_torch(component, close):
    """Outputs equal F.scaled_dot_product_attention's for 1, 2 and 3 leading dimensions."""
    gen = torch.Generator().manual_seed(11)
    for lead, lq, lk, dk, dv in [
        ((3, 4), 6, 9, 16, 5),
        ((5,), 7, 7, 32, 32),
        ((2, 2, 2), 4, 3, 8, 12),
    ]:
        q, k, v = _qkv(gen, lead, lq, lk, dk, dv)
        out, _ = component("sdpa", f"scaled_dot_product_attention({_describe(q, k, v)})",
                           {"q": q, "k": k, "v": v})  # fmt: skip
        close(out, F.scaled_dot_product_attention(q, k, v), f"output for {_describe(q, k, v)}")


@points(1)
def test_weights(component, close):
    """The weights are softmax(q k^T / sqrt(d_k)) over the keys, shape (..., L_q, L_k)."""
    gen = torch.Generator().manual_seed(12)
    q, k, v = _qkv(gen, (2,), 6, 10, 12, 3)
    _, w = component("sdpa", f"scaled_dot_product_attention({_describe(q, k, v)})",
                     {"q": q, "k": k, "v": v})  # fmt: skip
    want = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(12), dim=-1)
    close(
        w,
        want,
        f"weights for {_describe(q, k, v)} (d_k = 12, d_v = 3)",
        against="softmax(q k^T / sqrt(d_k))",
    )


@points(1)
def test_mask(component, close):
    """A boolean mask (True = may attend): outputs as F.scaled_dot_product_attention(attn_mask=),
    weight 0 exactly at masked pairs; a broadcast (B, 1, L_q, L_k) mask and a causal (L, L) one."""
    gen = torch.Generator().manual_seed(13)
    q, k, v = _qkv(gen, (2, 3), 6, 9, 8, 4)
    mask = torch.rand(2, 1, 6, 9, generator=gen) < 0.5
    mask[..., 0] = True  # every query keeps a key
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    qs, ks, vs = _qkv(gen, (4,), 7, 7, 8, 8)
    for (q_, k_, v_), m in [((q, k, v), mask), ((qs, ks, vs), causal)]:
        what = f"scaled_dot_product_attention({_describe(q_, k_, v_, m)})"
        out, w = component("sdpa", what, {"q": q_, "k": k_, "v": v_, "mask": m})
        close(
            out, F.scaled_dot_product_attention(q_, k_, v_, attn_mask=m), f"masked output, {what}"
        )
        assert isinstance(w, torch.Tensor) and w.shape == out.shape[:-1] + (k_.shape[-2],), (
            f"{what}: weights of shape {getattr(w, 'shape', None)}"
        )
        leaked = w.masked_select(~m.expand_as(w)).abs().max().item()
        assert leaked == 0, f"{what}: weight up to {leaked:.3g} where the mask is False, expected 0"
