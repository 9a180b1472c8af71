"""dlcourse.language_model (the tiny GPT of T08) and the English text it is trained on."""

import math

import pytest
import torch

from dlcourse import language_model as lm
from dlcourse import samples


def tiny(vocab=11, d=16, layers=2, heads=2, context=8):
    torch.manual_seed(0)
    return lm.TinyGPT(vocab, d_model=d, n_layers=layers, n_heads=heads, context=context)


def test_shapes_and_weight_tying():
    model = tiny()
    logits = model(torch.randint(0, 11, (3, 8)))
    assert logits.shape == (3, 8, 11)
    assert model.head.weight is model.tok.weight


def test_attention_is_causal():
    """Changing a later token leaves the logits of every earlier position unchanged."""
    model = tiny().eval()
    x = torch.randint(0, 11, (1, 8))
    y = x.clone()
    y[0, 5] = (x[0, 5] + 1) % 11
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="longer than the context"):
        tiny(context=4)(torch.zeros(1, 5, dtype=torch.long))


@pytest.mark.parametrize("d, layers", [(16, 2), (24, 1), (64, 3)])
def test_non_embedding_parameters_by_formula(d, layers):
    """Per block: LayerNorms 4d, attention 4d^2 + 4d, MLP 8d^2 + 5d; a final LayerNorm 2d."""
    model = tiny(vocab=50, d=d, layers=layers, heads=2, context=8)
    assert lm.count_parameters(model, embeddings=False) == layers * (12 * d * d + 13 * d) + 2 * d
    embeddings = 50 * d + 8 * d  # tokens (shared with the output layer) and positions
    assert lm.count_parameters(model) == lm.count_parameters(model, False) + embeddings


def test_random_windows_are_shifted_by_one():
    ids = torch.arange(100)
    x, y = lm.random_windows(ids, 6, 10, torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (6, 10)
    torch.testing.assert_close(y, x + 1)
    assert int(y.max()) <= 99
    x2, _ = lm.random_windows(ids, 6, 10, torch.Generator().manual_seed(1))
    torch.testing.assert_close(x, x2)


def test_evaluate_uniform_model_is_log_vocab():
    """Zero token embeddings make every logit 0: the loss is ln(vocabulary) per token."""
    model = tiny(vocab=13)
    with torch.no_grad():
        model.tok.weight.zero_()
    ids = torch.randint(0, 13, (8 * 5 + 1,))
    assert lm.evaluate_lm(model, ids) == pytest.approx(math.log(13), abs=1e-5)


def test_training_learns_a_repeating_sequence():
    model = tiny(vocab=10, context=8)
    ids = torch.arange(10).repeat(50)
    before = lm.evaluate_lm(model, ids)
    losses = lm.train_lm(model, ids, steps=80, batch_size=16, lr=1e-2)
    assert len(losses) == 80
    assert lm.evaluate_lm(model, ids) < 0.2 < before


def test_generate_length_range_and_seed():
    model = tiny()
    a = lm.generate(model, [1, 2], 20, seed=3)
    assert len(a) == 22 and a[:2] == [1, 2] and all(0 <= i < 11 for i in a)
    assert lm.generate(model, [1, 2], 20, seed=3) == a


def test_english_prose_is_running_text():
    """prose=True keeps sentences and drops indented code, grammar rules, tables, underlines."""
    full, prose = samples.english_text(), samples.english_text(prose=True)
    assert 0.3 * len(full) < len(prose) < 0.8 * len(full)
    paragraphs = prose.split("\n\n")
    assert all(p and "\n" not in p and p[0] not in " |+" for p in paragraphs)
    assert "====" not in prose and "::=" not in prose
    assert "Assert statements are a convenient way to insert debugging assertions" in prose
