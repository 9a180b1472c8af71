"""Hidden tests for `MultiHeadAttention` (grade cell t07_attention_mha_check, 4 points).

nn.MultiheadAttention's weights are copied into q_proj, k_proj, v_proj and out_proj; outputs and
per-head weights (average_attn_weights=False) are compared. Several heads and several tokens
make a head split without the transpose show.
"""

import torch
import torch.nn as nn

from dlcourse.grading import points

GRADE_CELL = "t07_attention_mha_check"


def _ref(e, h, seed):
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(e, h, batch_first=True)
    with torch.no_grad():  # biases are zero at initialisation: give them values to check
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    return ref.eval()


def _self_attention(component, torch_mha_state, e=24, h=3):
    ref = _ref(e, h, 21)
    x = torch.randn(2, 7, e, generator=torch.Generator().manual_seed(22))
    got = component("mha", f"MultiHeadAttention({e}, {h}) on x {tuple(x.shape)}",
                    {"inputs": [x, x, x]}, ctor=(e, h), state=torch_mha_state(ref))  # fmt: skip
    with torch.no_grad():
        want = ref(x, x, x, average_attn_weights=False)
    return got, want, f"MultiHeadAttention({e}, {h}), self-attention on {tuple(x.shape)}"


@points(1)
def test_self_attention_output(component, close, torch_mha_state):
    (out, _), (want, _), what = _self_attention(component, torch_mha_state)
    close(out, want, f"{what}: output")


@points(1)
def test_self_attention_weights(component, close, torch_mha_state):
    (_, w), (_, want), what = _self_attention(component, torch_mha_state)
    close(w, want, f"{what}: weights of every head (B, H, L_q, L_k)")


@points(1)
def test_cross_attention_to_padded_keys(component, close, torch_mha_state):
    """Queries and keys of different lengths; a (B, 1, 1, L_k) padding mask."""
    ref = _ref(16, 2, 23)
    gen = torch.Generator().manual_seed(24)
    query, memory = torch.randn(3, 4, 16, generator=gen), torch.randn(3, 9, 16, generator=gen)
    keep = torch.arange(9) < torch.tensor([9, 5, 1])[:, None]
    what = "MultiHeadAttention(16, 2): queries (3, 4, 16), keys (3, 9, 16) of lengths 9, 5, 1"
    args = {"inputs": [query, memory, memory], "mask": keep[:, None, None, :]}
    out, w = component("mha", what, args, ctor=(16, 2), state=torch_mha_state(ref))
    with torch.no_grad():
        want, want_w = ref(
            query, memory, memory, key_padding_mask=~keep, average_attn_weights=False
        )
    close(out, want, f"{what}: output")
    close(w, want_w, f"{what}: weights")


@points(1)
def test_causal_one_head_and_eight(component, close, torch_mha_state):
    """A causal (L, L) mask with 1 and with 8 heads."""
    gen = torch.Generator().manual_seed(25)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    for h in (1, 8):
        ref = _ref(32, h, 26 + h)
        x = torch.randn(2, 6, 32, generator=gen)
        what = f"MultiHeadAttention(32, {h}), causal self-attention on {tuple(x.shape)}"
        out, w = component("mha", what, {"inputs": [x, x, x], "mask": causal}, ctor=(32, h),
                           state=torch_mha_state(ref))  # fmt: skip
        with torch.no_grad():
            want, want_w = ref(x, x, x, attn_mask=~causal, average_attn_weights=False)
        close(out, want, f"{what}: output")
        close(w, want_w, f"{what}: weights")
