"""Hidden tests for `EncoderBlock` (grade cell t07_attention_block_check, 3 points).

The reference is nn.TransformerEncoderLayer(norm_first=True, dropout=0) with its weights copied
into the block's self_attn (q/k/v/out_proj), linear1, linear2, norm1 and norm2.
"""

import torch
import torch.nn as nn

from dlcourse.grading import points

GRADE_CELL = "t07_attention_block_check"


def _ref(e, h, ff, seed):
    torch.manual_seed(seed)
    ref = nn.TransformerEncoderLayer(e, h, dim_feedforward=ff, dropout=0.0, batch_first=True,
                                     norm_first=True)  # fmt: skip
    with torch.no_grad():  # LayerNorm starts as the identity and biases at zero: move them
        for name in ("norm1", "norm2"):
            getattr(ref, name).weight.uniform_(0.5, 1.5)
            getattr(ref, name).bias.normal_(0, 0.3)
        ref.self_attn.in_proj_bias.normal_()
    return ref.eval()


def _state(ref, torch_mha_state):
    state = torch_mha_state(ref.self_attn, prefix="self_attn.")
    for name in ("linear1", "linear2", "norm1", "norm2"):
        for key, value in getattr(ref, name).state_dict().items():
            state[f"{name}.{key}"] = value.detach().clone()
    return state


@points(1)
def test_block_output(component, close, torch_mha_state):
    ref = _ref(24, 4, 48, 31)
    x = torch.randn(2, 5, 24, generator=torch.Generator().manual_seed(32))
    what = f"EncoderBlock(24, 4, 48) on x {tuple(x.shape)}"
    out, _ = component("block", what, {"inputs": [x]}, ctor=(24, 4, 48),
                       state=_state(ref, torch_mha_state))  # fmt: skip
    with torch.no_grad():
        close(out, ref(x), f"{what}: output vs nn.TransformerEncoderLayer(norm_first=True)")


@points(1)
def test_block_padding(component, close, torch_mha_state):
    ref = _ref(16, 2, 20, 33)
    x = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(34))
    keep = torch.arange(7) < torch.tensor([7, 2, 5])[:, None]
    what = f"EncoderBlock(16, 2, 20) on x {tuple(x.shape)} of lengths 7, 2, 5"
    out, _ = component("block", what, {"inputs": [x], "mask": keep[:, None, None, :]},
                       ctor=(16, 2, 20), state=_state(ref, torch_mha_state))  # fmt: skip
    with torch.no_grad():
        want = ref(x, src_key_padding_mask=~keep)
    close(out[keep], want[keep], f"{what}: output at the real tokens")


@points(1)
def test_block_causal_and_weights(component, close, torch_mha_state):
    ref = _ref(32, 8, 16, 35)
    x = torch.randn(2, 6, 32, generator=torch.Generator().manual_seed(36))
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    what = f"EncoderBlock(32, 8, 16), causal, on x {tuple(x.shape)}"
    out, w = component("block", what, {"inputs": [x], "mask": causal}, ctor=(32, 8, 16),
                       state=_state(ref, torch_mha_state))  # fmt: skip
    with torch.no_grad():
        want = ref(x, src_mask=~causal)
        h = ref.norm1(x)
        want_w = ref.self_attn(h, h, h, attn_mask=~causal, average_attn_weights=False)[1]
    close(out, want, f"{what}: output")
    close(w, want_w, f"{what}: weights (of the attention on norm1(x))")
