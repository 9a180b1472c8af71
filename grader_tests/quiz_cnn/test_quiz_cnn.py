"""Hidden answers to quiz_cnn, one point each (grade cells quiz_cnn_q1 ... quiz_cnn_q12).

The questions follow the CNN tutorials: T01 (pooling, convolution vs cross-correlation,
parameters), T02 (output sizes, "same" padding, transposed convolutions), T03 (receptive fields,
separable and Sobel filters) and T03b (skip connections). Where PyTorch can compute an answer,
the test computes it here instead of stating it, so the key cannot be wrong: shapes from a
forward pass, parameter counts from the modules, receptive fields from which input pixels get a
gradient, multiplications from `FlopCounterMode`.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from dlcourse.grading import grade_cell, points, quiz


def receptive_field(*layers: nn.Module, size: int = 32) -> int:
    """Width of the input region that reaches the centre output pixel (non-zero gradient).

    Max-pooling passes the gradient to one pixel per window, so it is measured as average
    pooling, which covers the same window."""
    net = nn.Sequential(
        *(
            nn.AvgPool2d(m.kernel_size, m.stride) if isinstance(m, nn.MaxPool2d) else m
            for m in layers
        )
    )
    for m in net:
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 1.0)
    x = torch.ones(1, 1, size, size, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    cols = x.grad[0, 0].abs().sum(dim=0).nonzero()
    return int(cols.max() - cols.min() + 1)


receptive_field.__test__ = False  # a helper, not a test


def conv(k: int) -> nn.Conv2d:
    return nn.Conv2d(1, 1, k, bias=False)


@grade_cell("quiz_cnn_q1")
@points(1)
def test_q1(student):
    """Q1: output width with stride 2 and padding 1 on 64x64."""
    out = nn.Conv2d(16, 16, 3, stride=2, padding=1)(torch.zeros(1, 16, 64, 64))
    quiz.expect(student, "Q1", out.shape[3])


@grade_cell("quiz_cnn_q2")
@points(1)
def test_q2(student):
    """Q2: zeros per side that keep the size for a 5x5 kernel with dilation 2."""
    n = 20
    same = [p for p in range(10) if nn.Conv1d(1, 1, 5, dilation=2, padding=p)(
        torch.zeros(1, 1, n)).shape[-1] == n]  # fmt: skip
    quiz.expect(student, "Q2", same[0])


@grade_cell("quiz_cnn_q3")
@points(1)
def test_q3(student):
    """Q3: output height of ConvTranspose2d(k=4, s=2, p=1) on 16x16."""
    out = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)(torch.zeros(1, 8, 16, 16))
    quiz.expect(student, "Q3", out.shape[2])


@grade_cell("quiz_cnn_q4")
@points(1)
def test_q4(student):
    """Q4: shape after MaxPool2d(2) of a (8, 16, 15, 15) input."""
    quiz.expect(student, "Q4", tuple(nn.MaxPool2d(2)(torch.zeros(8, 16, 15, 15)).shape))


@grade_cell("quiz_cnn_q5")
@points(1)
def test_q5(student):
    """Q5: valid part of the true convolution of (1, 2, 3, 4) with (1, 2): the flipped kernel."""
    x, w = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0])
    want = F.conv1d(x[None, None], w.flip(0)[None, None])[0, 0]
    quiz.expect(student, "Q5", tuple(round(v) for v in want.tolist()))  # whole numbers here


@grade_cell("quiz_cnn_q6")
@points(1)
def test_q6(student):
    """Q6: nn.Conv2d computes a cross-correlation (the kernel is not flipped)."""
    quiz.expect(student, "Q6", "b")


@grade_cell("quiz_cnn_q7")
@points(1)
def test_q7(student):
    """Q7: parameters of Conv2d(3, 16, 3)."""
    quiz.expect(student, "Q7", sum(p.numel() for p in nn.Conv2d(3, 16, 3).parameters()))


@grade_cell("quiz_cnn_q8")
@points(1)
def test_q8(student):
    """Q8: receptive field of three stacked 3x3 convolutions."""
    quiz.expect(student, "Q8", receptive_field(conv(3), conv(3), conv(3)))


@grade_cell("quiz_cnn_q9")
@points(1)
def test_q9(student):
    """Q9: receptive field of conv 3x3, max-pool 2x2 (stride 2), conv 3x3."""
    quiz.expect(student, "Q9", receptive_field(conv(3), nn.MaxPool2d(2), conv(3), size=33))


@grade_cell("quiz_cnn_q10")
@points(1)
def test_q10(student):
    """Q10: multiplications per output pixel of a 7x1 then a 1x7 convolution ("same")."""
    x = torch.zeros(1, 1, 32, 32)
    with FlopCounterMode(display=False) as counter:
        y = F.conv2d(x, torch.zeros(1, 1, 7, 1), padding=(3, 0))
        y = F.conv2d(y, torch.zeros(1, 1, 1, 7), padding=(0, 3))
    quiz.expect(student, "Q10", counter.get_total_flops() // 2 // y.numel())


@grade_cell("quiz_cnn_q11")
@points(1)
def test_q11(student):
    """Q11: largest Sobel G_x response to a dark-to-bright vertical step."""
    step = torch.zeros(8, 8)
    step[:, 4:] = 1.0
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    out = F.conv2d(step[None, None], sobel_x[None, None])
    quiz.expect(student, "Q11", int(out.max().item()))


@grade_cell("quiz_cnn_q12")
@points(1)
def test_q12(student):
    """Q12: a skip connection adds the identity to the block's Jacobian."""
    quiz.expect(student, "Q12", "b")
