"""Hidden answers to quiz_rnn, one point each (grade cells quiz_rnn_q1 ... quiz_rnn_q12).

Where PyTorch can compute an answer, the test computes it here instead of stating it, so the
key cannot be wrong: shapes from a forward pass, parameter counts from the modules, which slice
of `output` is `h_n[1]`, the vanishing derivative by autograd, and the gate questions by setting the
gates of an `nn.LSTMCell` / `nn.GRUCell` and seeing which option leaves the state unchanged.
"""

import torch
import torch.nn as nn

from dlcourse.grading import grade_cell, points, quiz

SATURATED = 50.0  # a gate pre-activation whose sigmoid is 1 (or 0) in float32


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def rnn_outputs():
    return nn.RNN(input_size=10, hidden_size=20, num_layers=2)(torch.zeros(5, 3, 10))


def lstm_outputs():
    lstm = nn.LSTM(8, 16, num_layers=3, bidirectional=True, batch_first=True)
    return lstm(torch.zeros(4, 7, 8))


def letter_of(options: dict[str, bool]) -> str:
    """The one option that holds; the test fails loudly if PyTorch disagrees with the key."""
    true = [k for k, ok in options.items() if ok]
    assert len(true) == 1, f"expected exactly one true option, got {true}"
    return true[0]


@grade_cell("quiz_rnn_q1")
@points(1)
def test_q1(student):
    """Q1: output shape of a 2-layer nn.RNN(10, 20) on (5, 3, 10)."""
    quiz.expect(student, "Q1", tuple(rnn_outputs()[0].shape))


@grade_cell("quiz_rnn_q2")
@points(1)
def test_q2(student):
    """Q2: h_n shape of the same RNN."""
    quiz.expect(student, "Q2", tuple(rnn_outputs()[1].shape))


@grade_cell("quiz_rnn_q3")
@points(1)
def test_q3(student):
    """Q3: output shape of a 3-layer bidirectional batch-first LSTM."""
    quiz.expect(student, "Q3", tuple(lstm_outputs()[0].shape))


@grade_cell("quiz_rnn_q4")
@points(1)
def test_q4(student):
    """Q4: c_n shape of the same LSTM (batch_first does not apply to it)."""
    quiz.expect(student, "Q4", tuple(lstm_outputs()[1][1].shape))


@grade_cell("quiz_rnn_q5")
@points(1)
def test_q5(student):
    """Q5: parameters of nn.RNN(10, 20)."""
    quiz.expect(student, "Q5", n_params(nn.RNN(10, 20)))


@grade_cell("quiz_rnn_q6")
@points(1)
def test_q6(student):
    """Q6: parameters of nn.LSTM(10, 20)."""
    quiz.expect(student, "Q6", n_params(nn.LSTM(10, 20)))


@grade_cell("quiz_rnn_q7")
@points(1)
def test_q7(student):
    """Q7: parameters of a 2-layer nn.GRU(16, 32)."""
    quiz.expect(student, "Q7", n_params(nn.GRU(16, 32, num_layers=2)))


@grade_cell("quiz_rnn_q8")
@points(1)
def test_q8(student):
    """Q8: the backward direction's final state is output[0, :, H:]."""
    torch.manual_seed(0)
    output, h_n = nn.GRU(4, 8, bidirectional=True)(torch.randn(6, 3, 4))
    options = {
        "a": torch.allclose(output[-1, :, 8:], h_n[1]),
        "b": torch.allclose(output[0, :, 8:], h_n[1]),
        "c": torch.allclose(output[-1, :, :8], h_n[1]),
    }
    quiz.expect(student, "Q8", letter_of(options))


@grade_cell("quiz_rnn_q9")
@points(1)
def test_q9(student):
    """Q9: one W_hh is shared by all steps; its gradient sums the steps' contributions."""
    quiz.expect(student, "Q9", "b")


@grade_cell("quiz_rnn_q10")
@points(1)
def test_q10(student):
    """Q10: first k with d h_k / d h_0 < 1e-3 for h_t = 0.9 h_{t-1} + x_t, by autograd."""
    h0 = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    h, k = h0, 0
    xs = torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    while True:
        h = 0.9 * h + xs[k]
        k += 1
        (grad,) = torch.autograd.grad(h, h0, retain_graph=True)
        if grad.item() < 1e-3:
            break
    quiz.expect(student, "Q10", k)


@grade_cell("quiz_rnn_q11")
@points(1)
def test_q11(student):
    """Q11: f = 1, i = 0 keeps the LSTM's cell state (gates set through nn.LSTMCell's biases)."""
    hidden = 3

    def new_cell(gate_bias):  # PyTorch's gate order: input, forget, cell, output
        cell = nn.LSTMCell(2, hidden)
        with torch.no_grad():
            cell.weight_ih.zero_()
            cell.weight_hh.zero_()
            cell.bias_hh.zero_()
            cell.bias_ih.copy_(torch.cat([torch.full((hidden,), b) for b in gate_bias]))
        return cell

    g = 0.7  # the candidate's pre-activation: tanh(0.7) != 0, so writing it would show
    x, h0, c0 = torch.randn(4, 2), torch.randn(4, hidden), torch.randn(4, hidden)
    options = {
        "a": new_cell([-SATURATED, SATURATED, g, 0.0]),
        "b": new_cell([SATURATED, -SATURATED, g, 0.0]),
        "c": new_cell([0.0, 0.0, g, SATURATED]),
    }
    with torch.no_grad():
        kept = {k: torch.allclose(cell(x, (h0, c0))[1], c0) for k, cell in options.items()}
    quiz.expect(student, "Q11", letter_of(kept))


@grade_cell("quiz_rnn_q12")
@points(1)
def test_q12(student):
    """Q12: z = 1 copies the GRU's state (update gate saturated through nn.GRUCell's bias)."""
    hidden = 3
    cell = nn.GRUCell(2, hidden)
    with torch.no_grad():  # PyTorch's gate order: reset, update, new
        cell.bias_ih[hidden : 2 * hidden] = SATURATED
    x, h0 = torch.randn(4, 2), torch.randn(4, hidden)
    reset, new = slice(0, hidden), slice(2 * hidden, 3 * hidden)
    w_ih, w_hh, b_ih, b_hh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    with torch.no_grad():
        h1 = cell(x, h0)
        r = torch.sigmoid(x @ w_ih[reset].T + b_ih[reset] + h0 @ w_hh[reset].T + b_hh[reset])
        n = torch.tanh(x @ w_ih[new].T + b_ih[new] + r * (h0 @ w_hh[new].T + b_hh[new]))
    options = {
        "a": torch.allclose(h1, h0),
        "b": torch.allclose(h1, n),
        "c": torch.allclose(h1, torch.zeros_like(h1)),
    }
    quiz.expect(student, "Q12", letter_of(options))
