"""dlcourse.attention: the synthetic tasks, the weight copying, the figures and the cost table
(the measurements themselves are tested in tests/test_measure.py)."""

import math

import matplotlib
import pytest
import torch
import torch.nn as nn

from dlcourse import attention

matplotlib.use("Agg")


def test_sequence_tasks():
    gen = torch.Generator().manual_seed(0)
    x, y = attention.sequence_task("reverse", 5, 7, vocab=4, generator=gen)
    assert x.shape == y.shape == (5, 7) and x.dtype == torch.int64
    assert torch.equal(y, x.flip(1)) and int(x.max()) < 4
    x, y = attention.sequence_task("sort", 5, 7, generator=gen)
    assert torch.equal(y, x.sort(dim=1).values)
    with pytest.raises(ValueError, match="unknown task"):
        attention.sequence_task("copy", 1, 1)


class _Mha(nn.Module):
    """The layout the tutorial asks for, written out once here to test the copying."""

    def __init__(self, e, h):
        super().__init__()
        self.h = h
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(e, e) for _ in range(4))

    def forward(self, x, mask=None):
        b, length, e = x.shape

        def split(t):
            return t.view(b, length, self.h, e // self.h).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        s = q @ k.transpose(-2, -1) / math.sqrt(e // self.h)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        out = torch.softmax(s, -1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, length, e))


class _Block(nn.Module):
    def __init__(self, e, h, ff):
        super().__init__()
        self.self_attn = _Mha(e, h)
        self.norm1, self.norm2 = nn.LayerNorm(e), nn.LayerNorm(e)
        self.linear1, self.linear2 = nn.Linear(e, ff), nn.Linear(ff, e)

    def forward(self, x):
        x = x + self.self_attn(self.norm1(x))
        return x + self.linear2(torch.relu(self.linear1(self.norm2(x))))


def test_copy_from_torch_mha_and_encoder_layer():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    ref = nn.MultiheadAttention(8, 2, batch_first=True)
    mine = _Mha(8, 2)
    attention.copy_from_torch_mha(mine, ref)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), ref(x, x, x)[0], atol=1e-6, rtol=1e-5)
    layer = nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True, norm_first=True)
    block = _Block(8, 2, 12)
    attention.copy_from_torch_encoder_layer(block, layer.eval())
    with torch.no_grad():
        torch.testing.assert_close(block(x), layer(x), atol=1e-5, rtol=1e-5)


def test_attention_cost_and_its_figure():
    naive = lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1), -1) @ v  # noqa: E731
    cost = attention.attention_cost(
        {"naive": naive, "sdpa": torch.nn.functional.scaled_dot_product_attention},
        [16, 32], heads=2, head_dim=8, min_run_time=0.01,
    )  # fmt: skip
    assert cost["naive"]["seq_len"] == [16, 32]
    assert all(t > 0 for c in cost.values() for t in c["seconds"])
    assert cost["naive"]["peak_bytes"][1] > cost["naive"]["peak_bytes"][0]
    fig = attention.plot_attention_cost(cost, reference_bytes=[1e4, 4e4])
    assert [ax.get_xlabel() for ax in fig.axes] == ["sequence length L"] * 2
    assert all(ax.get_title() for ax in fig.axes)


def test_show_attention():
    w = torch.softmax(torch.randn(3, 4, 5), -1)
    fig = attention.show_attention(w, title="maps")
    assert [ax.get_title() for ax in fig.axes[:3]] == ["head 0", "head 1", "head 2"]
    assert fig.axes[0].get_xlabel() == "key position"
    with pytest.raises(ValueError, match="expected"):
        attention.show_attention(torch.zeros(5))
