"""Hidden tests for `padding_mask` and `causal_mask` (grade cell t07_attention_masks_check,
2 points)."""

import torch
import torch.nn as nn

from dlcourse.grading import points

GRADE_CELL = "t07_attention_masks_check"


def probe_padding(ns, lengths, max_len):
    return ns["padding_mask"](lengths, max_len)


def probe_causal(ns, length):
    return ns["causal_mask"](length)


def _check_mask(got, want, what):
    assert isinstance(got, torch.Tensor), f"{what} returned {type(got).__name__}, expected a tensor"
    assert got.dtype == torch.bool, f"{what}: dtype {got.dtype}, expected torch.bool"
    assert tuple(got.shape) == tuple(want.shape), (
        f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    )
    wrong = (got != want).nonzero().tolist()
    assert not wrong, f"{what}: {len(wrong)} wrong entries, the first at index {tuple(wrong[0])}"


@points(1)
def test_padding_mask(student):
    """True before each sequence's length, False after; lengths 0 and max_len included."""
    for lengths, max_len in [([0, 5, 2, 3], 5), ([7], 7), ([1, 6], 9)]:
        lengths = torch.tensor(lengths)
        got = student.run(probe_padding, lengths=lengths, max_len=max_len)
        want = torch.arange(max_len)[None, :] < lengths[:, None]
        _check_mask(got, want, f"padding_mask({lengths.tolist()}, {max_len})")


@points(1)
def test_causal_mask(student):
    """Query i may attend to keys 0..i: PyTorch's square subsequent mask is 0 exactly there."""
    for length in [1, 3, 8]:
        got = student.run(probe_causal, length=length)
        want = nn.Transformer.generate_square_subsequent_mask(length) == 0
        _check_mask(got, want, f"causal_mask({length})")
