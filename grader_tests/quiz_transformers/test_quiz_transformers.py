"""Hidden answers to quiz_transformers, one point each (grade cells quiz_transformers_q1 ... q12).

Where PyTorch can compute an answer, the test computes it here instead of stating it, so the
key cannot be wrong: shapes from a forward pass, parameter counts from the modules, the mask
convention and permutation equivariance from what nn.MultiheadAttention and an encoder layer
do, sizes from meta tensors and multiply-adds from torch.utils.flop_counter.
"""

import math

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from dlcourse.grading import grade_cell, points, quiz


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def q1_call():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(64, 8, batch_first=True)
    query, kv = torch.zeros(2, 10, 64), torch.zeros(2, 15, 64)
    with torch.no_grad():
        return mha(query, kv, kv, average_attn_weights=False)


@grade_cell("quiz_transformers_q1")
@points(1)
def test_q1(student):
    """Q1: per-head attention weights of nn.MultiheadAttention(64, 8) are (B, H, L_q, L_k)."""
    quiz.expect(student, "Q1", tuple(q1_call()[1].shape))


@grade_cell("quiz_transformers_q2")
@points(1)
def test_q2(student):
    """Q2: the output has the queries' shape."""
    quiz.expect(student, "Q2", tuple(q1_call()[0].shape))


@grade_cell("quiz_transformers_q3")
@points(1)
def test_q3(student):
    """Q3: parameters of nn.MultiheadAttention(64, 8): 4 E^2 + 4 E."""
    quiz.expect(student, "Q3", params(nn.MultiheadAttention(64, 8)))


@grade_cell("quiz_transformers_q4")
@points(1)
def test_q4(student):
    """Q4: parameters of nn.TransformerEncoderLayer(64, 8, dim_feedforward=256)."""
    quiz.expect(student, "Q4", params(nn.TransformerEncoderLayer(64, 8, dim_feedforward=256)))


@grade_cell("quiz_transformers_q5")
@points(1)
def test_q5(student):
    """Q5: Var(q . k) = sum over the 64 coordinates of E[q_i^2] E[k_i^2] = 64 (by hand)."""
    quiz.expect(student, "Q5", 64, abs_tol=1e-9)


@grade_cell("quiz_transformers_q6")
@points(1)
def test_q6(student):
    """Q6: the scaling keeps the scores' variance near 1, away from a saturated softmax."""
    quiz.expect(student, "Q6", "b")


@grade_cell("quiz_transformers_q7")
@points(1)
def test_q7(student):
    """Q7: allowed pairs of a causal mask of length 6 (PyTorch's mask is 0 exactly there)."""
    allowed = nn.Transformer.generate_square_subsequent_mask(6) == 0
    quiz.expect(student, "Q7", int(allowed.sum()))


@grade_cell("quiz_transformers_q8")
@points(1)
def test_q8(student):
    """Q8: nn.MultiheadAttention's boolean attn_mask: True means "may not attend"."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(4, 1, batch_first=True)
    x = torch.randn(1, 3, 4)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[0, 1] = True
    with torch.no_grad():
        weight = mha(x, x, x, attn_mask=mask)[1][0, 0, 1].item()
    quiz.expect(student, "Q8", "b" if weight == 0 else "a")


@grade_cell("quiz_transformers_q9")
@points(1)
def test_q9(student):
    """Q9: |PE_37|^2 for d = 128, from the formula (sin^2 + cos^2 = 1 for each of 64 pairs)."""
    angles = 37 / 10000 ** (torch.arange(0, 128, 2, dtype=torch.float64) / 128)
    squared = float((torch.sin(angles) ** 2 + torch.cos(angles) ** 2).sum())
    quiz.expect(student, "Q9", round(squared), abs_tol=1e-6)


@grade_cell("quiz_transformers_q10")
@points(1)
def test_q10(student):
    """Q10: without positions an encoder layer in eval mode (dropout off, as the question says)
    is permutation-equivariant."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True).eval()
    x, perm = torch.randn(1, 6, 16), torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        out, out_permuted = layer(x), layer(x[:, perm])
    if torch.allclose(out_permuted, out, atol=1e-5):
        answer = "a"
    else:
        answer = "b" if torch.allclose(out_permuted, out[:, perm], atol=1e-5) else "c"
    quiz.expect(student, "Q10", answer)


@grade_cell("quiz_transformers_q11")
@points(1)
def test_q11(student):
    """Q11: bytes of a float32 (8, 12, 1024, 1024) score tensor."""
    quiz.expect(student, "Q11", torch.empty(8, 12, 1024, 1024, device="meta").nbytes)


def qk_flops(length: int) -> int:
    q = torch.empty(1, length, 64, device="meta")
    with FlopCounterMode(display=False) as counter:
        q @ q.transpose(-2, -1)
    return counter.get_total_flops()


@grade_cell("quiz_transformers_q12")
@points(1)
def test_q12(student):
    """Q12: Q K^T costs L^2 d: four times the length, sixteen times the work."""
    ratio = qk_flops(4096) / qk_flops(1024)
    assert math.isclose(ratio, round(ratio))
    quiz.expect(student, "Q12", round(ratio))
