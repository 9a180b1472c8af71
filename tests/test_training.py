"""dlcourse.training: the weighted loss, evaluation, augmentation, and the curve-recording
training loop."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import training
from dlcourse.data import Split


def toy_split(n=96, seed=0):
    """Two well-separated blobs of 2x2 "images", labels 0 and 1."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 1, 2, 2, generator=gen) * 0.3 + (y.float() * 2 - 1).view(-1, 1, 1, 1)
    return Split(x, y)


def weighted_mean_loss(logits, targets, weights):
    return (weights * F.cross_entropy(logits, targets, reduction="none")).mean()


def toy_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))


def test_evaluate_counts_and_averages():
    split = toy_split(10)
    model = toy_model()
    loss, acc = training.evaluate(model, split, batch_size=3)
    with torch.no_grad():
        logits = model(split.x)
    assert acc == pytest.approx((logits.argmax(1) == split.y).float().mean().item())
    assert loss == pytest.approx(F.cross_entropy(logits, split.y).item(), rel=1e-6)


def test_training_records_curves_and_learns(capsys):
    split = toy_split()
    hist = training.train_classifier(
        toy_model(),
        split,
        epochs=3,
        lr=0.5,
        val=split,
        evals_per_epoch=2,
        label="toy",
        val_name="test",
    )
    assert hist["epoch"] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    for key in ("train loss", "val loss", "val accuracy"):
        assert len(hist[key]) == 6
    assert hist["val loss"][-1] < hist["val loss"][0]
    assert hist["val accuracy"][-1] == 1.0
    assert len(hist["seconds"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("toy: 3 epoch(s) on 96 images") and ", test loss " in out


def test_same_seed_same_run_and_no_global_rng_use():
    split = toy_split()
    runs = []
    for _ in range(2):
        model = toy_model()
        torch.manual_seed(123)
        hist = training.train_classifier(model, split, epochs=2, lr=0.1, optimizer="adam")
        runs.append((hist["train loss"], model[1].weight.detach().clone(), torch.rand(1)))
    assert runs[0][0] == runs[1][0]
    torch.testing.assert_close(runs[0][1], runs[1][1])
    torch.testing.assert_close(runs[0][2], runs[1][2])  # the global RNG was not consumed


def test_zero_weights_leave_the_model_unchanged():
    split = toy_split()
    model = toy_model()
    before = [p.detach().clone() for p in model.parameters()]
    training.train_classifier(model, split, epochs=1, lr=0.5, sample_weights=torch.zeros(96),
                              loss_fn=weighted_mean_loss)  # fmt: skip
    for b, p in zip(before, model.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), b)


def test_custom_loss_gets_the_batch_weights():
    split = toy_split(8)
    seen = []

    def loss_fn(logits, targets, weights):
        seen.append(weights.clone())
        return F.cross_entropy(logits, targets)

    w = torch.arange(8, dtype=torch.float32)
    training.train_classifier(toy_model(), split, epochs=1, lr=0.1, batch_size=8,
                              sample_weights=w, loss_fn=loss_fn, evals_per_epoch=1)  # fmt: skip
    assert len(seen) == 1 and sorted(seen[0].tolist()) == w.tolist()


def test_bad_arguments_are_refused():
    split = toy_split(8)
    with pytest.raises(ValueError, match="optimizer"):
        training.train_classifier(toy_model(), split, epochs=1, lr=0.1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="sample_weights must have shape"):
        training.train_classifier(toy_model(), split, epochs=1, lr=0.1,
                                  sample_weights=torch.ones(7),
                                  loss_fn=weighted_mean_loss)  # fmt: skip
    with pytest.raises(ValueError, match="need a loss_fn"):
        training.train_classifier(toy_model(), split, epochs=1, lr=0.1,
                                  sample_weights=torch.ones(8))  # fmt: skip


def test_transform_changes_the_images_not_the_batches():
    """A transform sees every training batch (with its own generator) and the model sees what it
    returns; drawing from its generator leaves the batch order of the run unchanged."""
    split = toy_split()
    calls = []

    def noisy_identity(x, gen):
        calls.append((len(x), gen))
        return x + 0.0 * torch.rand(x.shape, generator=gen)

    kwargs = {"epochs": 2, "lr": 0.1, "batch_size": 32, "evals_per_epoch": 1}
    plain = training.train_classifier(toy_model(), split, **kwargs)
    same = training.train_classifier(toy_model(), split, **kwargs, transform=noisy_identity)
    assert plain["train loss"] == same["train loss"]
    assert [n for n, _ in calls] == [32] * 6 and len({id(g) for _, g in calls}) == 1
    model = toy_model()
    before = [p.detach().clone() for p in model.parameters()]
    training.train_classifier(model, split, epochs=1, lr=0.5,
                              transform=lambda x, gen: torch.zeros_like(x))  # fmt: skip
    weight, bias = (p.detach() for p in model.parameters())
    torch.testing.assert_close(weight, before[0])  # zero images: no gradient reaches the weights
    assert not torch.equal(bias, before[1])
