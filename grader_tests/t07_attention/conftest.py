"""Shared by the T07 hidden tests: one probe that runs a notebook component in the student's
process while recording what it calls, and the comparisons the tests make.

The exercises ask for attention written from tensor operations, so every call is made under
torch.profiler (which names each aten operator reached, whatever route the code takes to it:
`F.scaled_dot_product_attention`, `torch._C._nn...` or `torch.ops.aten...` all pass through
`aten::scaled_dot_product_attention`) with `F.multi_head_attention_forward`,
`nn.MultiheadAttention.forward` and `nn.TransformerEncoderLayer.forward` wrapped to record calls
(they reach only ordinary operators). A component that uses them earns nothing.

A mistake costs only the marks of the exercise it is in: `MultiHeadAttention` is called with a
correct `scaled_dot_product_attention` in place of the notebook's, and `EncoderBlock` with a
correct `MultiHeadAttention` as well (both written out in the probe from the same operators), so
a missing scale factor in Exercise 1 does not also cost Exercises 3 and 8.
"""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

FORBIDDEN_OPS = ("scaled_dot_product", "multi_head_attention", "transformer_encoder_layer")


def probe_component(ns, kind, args, ctor=(), state=None):
    """In the student process: build and call `kind` ("sdpa", "mha" or "block") on the test's
    inputs, without gradients; return its outputs and the attention functions it reached."""
    import os

    from torch.profiler import ProfilerActivity, profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # the profiler's start/stop lines
    name = {"sdpa": "scaled_dot_product_attention", "mha": "MultiHeadAttention",
            "block": "EncoderBlock"}[kind]  # fmt: skip
    target = ns[name]  # fails with "the notebook defines no ..." when missing

    def reference_sdpa(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return weights @ v, weights

    class ReferenceMultiHeadAttention(nn.Module):
        def __init__(self, embed_dim, num_heads):
            super().__init__()
            self.num_heads = num_heads
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
                nn.Linear(embed_dim, embed_dim) for _ in range(4)
            )

        def forward(self, query, key, value, mask=None):
            def split(t):
                b, length, e = t.shape
                return t.view(b, length, self.num_heads, e // self.num_heads).transpose(1, 2)

            q, k, v = split(self.q_proj(query)), split(self.k_proj(key)), split(self.v_proj(value))
            out, weights = reference_sdpa(q, k, v, mask)
            b, h, length, d = out.shape
            return self.out_proj(out.transpose(1, 2).reshape(b, length, h * d)), weights

    swaps = {}
    if kind in ("mha", "block"):
        swaps["scaled_dot_product_attention"] = reference_sdpa
    if kind == "block":
        swaps["MultiHeadAttention"] = ReferenceMultiHeadAttention
    # The notebook's definitions live in one dict: the globals its methods look names up in.
    definitions = getattr(getattr(target, "forward", None), "__globals__", None)
    if not isinstance(definitions, dict):
        definitions, swaps = {}, {}
    saved = {key: definitions[key] for key in swaps if key in definitions}

    called, spied = [], []
    for owner, attr in [(F, "multi_head_attention_forward"), (nn.MultiheadAttention, "forward"),
                        (nn.TransformerEncoderLayer, "forward")]:  # fmt: skip
        original = getattr(owner, attr)

        def spy(*a, _original=original, _attr=attr, **k):
            called.append(_attr)
            return _original(*a, **k)

        setattr(owner, attr, spy)
        spied.append((owner, attr, original))
    definitions.update(swaps)
    try:
        mask = args.get("mask")
        if kind == "sdpa":
            fn, inputs = target, (args["q"], args["k"], args["v"])
        else:
            fn, inputs = target(*ctor), tuple(args["inputs"])
            with torch.no_grad():
                for key, value in state.items():
                    try:
                        fn.get_parameter(key).copy_(value)
                    except (AttributeError, RuntimeError) as exc:
                        raise RuntimeError(
                            f"{name}{tuple(ctor)}: cannot set `{key}` to a tensor of shape "
                            f"{tuple(value.shape)} as the tutorial lays it out ({exc})"
                        ) from None
            fn.eval()
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            result = fn(*inputs) if mask is None else fn(*inputs, mask)
    finally:
        for key in swaps:
            definitions.pop(key, None)
        definitions.update(saved)
        for owner, attr, original in spied:
            setattr(owner, attr, original)
    ops = sorted({e.name for e in prof.events()})
    pair = isinstance(result, tuple | list) and len(result) == 2
    returned = type(result).__name__
    if isinstance(result, tuple | list):
        returned += f" of {len(result)}"

    def clean(t):
        return t.detach().cpu() if isinstance(t, torch.Tensor) else f"a {type(t).__name__}"

    return {
        "pair": pair,
        "returned": returned,
        "out": clean(result[0]) if pair else clean(result),
        "weights": clean(result[1]) if pair else None,
        "ops": ops,
        "called": sorted(set(called)),
    }


@pytest.fixture
def component(student):
    """Run a component and return (output, weights), failing if it used PyTorch's attention."""

    def run(kind, what, args, ctor=(), state=None):
        got = student.run(probe_component, kind=kind, args=args, ctor=list(ctor), state=state)
        library = [op for op in got["ops"] if any(f in op for f in FORBIDDEN_OPS)]
        library += [f"nn.{c}" if c == "forward" else f"F.{c}" for c in got["called"]]
        assert not library, (
            f"{what} uses PyTorch's own attention ({', '.join(library)}); the exercise is to "
            "write it from matrix products and softmax"
        )
        assert got["pair"], (
            f"{what} returned a {got['returned']}; the tutorial asks for a tuple (output, weights)"
        )
        return got["out"], got["weights"]

    return run


def assert_close(got, want, what, atol=1e-5, rtol=1e-5, against="PyTorch's"):
    """`got` is a floating tensor of `want`'s shape and values, or the message says how not."""
    assert isinstance(got, torch.Tensor), f"{what}: got {got}, expected a tensor"
    assert tuple(got.shape) == tuple(want.shape), (
        f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    )
    assert got.is_floating_point(), f"{what}: dtype {got.dtype}, expected a floating-point tensor"
    assert not torch.isnan(got).any(), f"{what}: holds NaN (a row with every key masked?)"
    err = (got.double() - want.double()).abs().max().item()
    assert torch.allclose(got.double(), want.double(), atol=atol, rtol=rtol), (
        f"{what}: differs from {against} by up to {err:.3g} "
        f"(tolerance {atol:g} + {rtol:g} x |value|)"
    )


@pytest.fixture
def close():
    return assert_close


def mha_state(ref, prefix=""):
    """nn.MultiheadAttention's weights under the tutorial's names: q_proj, k_proj, v_proj and
    out_proj (PyTorch stacks the first three in in_proj_weight)."""
    e = ref.embed_dim
    state = {}
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
        state[f"{prefix}{name}.weight"] = ref.in_proj_weight[i * e : (i + 1) * e].detach().clone()
        state[f"{prefix}{name}.bias"] = ref.in_proj_bias[i * e : (i + 1) * e].detach().clone()
    state[f"{prefix}out_proj.weight"] = ref.out_proj.weight.detach().clone()
    state[f"{prefix}out_proj.bias"] = ref.out_proj.bias.detach().clone()
    return state


@pytest.fixture
def torch_mha_state():
    return mha_state
