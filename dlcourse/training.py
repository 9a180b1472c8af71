"""A small classifier training loop that records loss curves, for the tutorials' measured runs.

T03b trains a CNN with and without data augmentation, T04 with and without batch-norm, T04b the
same model with and without importance weights; each compares runs that differ in one thing
only, so the loop is shared and fixed here: the same mini-batches in the same order for every run
with the same `seed` (its own generator, the global RNG is left alone; a `transform` draws from a
second one, so augmenting does not change the batches), and a point on the curves after each
stretch of
1/`evals_per_epoch` of an epoch (mean training loss over the stretch, validation loss and
accuracy in evaluation mode). `sample_weights` (one per training example) go to `loss_fn`
with each batch, so a notebook trains with the student's own weighted loss; the module has no
weighted loss of its own, which would be the answer to T04b's exercise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.data import Split

LossFn = Callable[..., torch.Tensor]
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on `split`, in evaluation mode."""
    model.eval()
    dev = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    for xb, yb in split.batches(batch_size):
        logits = model(xb.to(dev))
        yb = yb.to(dev)
        total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(dim=1) == yb).sum().item()
    return total_loss / len(split), correct / len(split)


def train_classifier(
    model: nn.Module,
    train: Split,
    epochs: int,
    lr: float,
    val: Split | None = None,
    optimizer: str = "sgd",
    batch_size: int = 64,
    sample_weights: torch.Tensor | None = None,
    loss_fn: LossFn | None = None,
    transform: Transform | None = None,
    evals_per_epoch: int = 4,
    seed: int = 0,
    label: str = "",
    val_name: str = "validation",
) -> dict[str, list[float]]:
    """Train `model` in place and return its curves.

    The history holds, per stretch: "epoch" (fractional, where the point sits), "train loss"
    (mean of the stretch's batch losses), and with `val` also "val loss" and "val accuracy";
    "seconds" is the wall-clock time of the whole run (shown, never compared). `optimizer` is
    "sgd" (plain SGD) or "adam". The loss is `loss_fn(logits, targets)` (by default
    `F.cross_entropy`), or `loss_fn(logits, targets, weights)` with the batch's share of
    `sample_weights` when those are given (then `loss_fn` is required). `transform(images,
    generator)` (data augmentation) replaces each training batch's images, on the CPU, before
    the model sees them; its generator is seeded from `seed` too. Prints one line at the
    end, prefixed by `label`, naming the `val` split `val_name` (T04b's is the test set).
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', not {optimizer!r}")
    if sample_weights is not None and sample_weights.shape != (len(train),):
        raise ValueError(
            f"sample_weights must have shape ({len(train)},), not {tuple(sample_weights.shape)}"
        )
    if sample_weights is not None and loss_fn is None:
        raise ValueError("sample_weights need a loss_fn(logits, targets, weights) to use them")
    if epochs < 1 or evals_per_epoch < 1:
        raise ValueError("epochs and evals_per_epoch must be at least 1")
    loss_fn = loss_fn or F.cross_entropy
    dev = next(model.parameters()).device
    params = model.parameters()
    opt = torch.optim.SGD(params, lr=lr) if optimizer == "sgd" else torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    transform_gen = torch.Generator().manual_seed(seed + 1)
    history: dict[str, list[float]] = {"epoch": [], "train loss": []}
    if val is not None:
        history.update({"val loss": [], "val accuracy": []})
    n = len(train)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        for k, part in enumerate(order.chunk(evals_per_epoch)):
            model.train()
            total, seen = 0.0, 0
            for i in range(0, len(part), batch_size):
                idx = part[i : i + batch_size]
                xb = train.x[idx] if transform is None else transform(train.x[idx], transform_gen)
                xb, yb = xb.to(dev), train.y[idx].to(dev)
                logits = model(xb)
                if sample_weights is None:
                    loss = loss_fn(logits, yb)
                else:
                    loss = loss_fn(logits, yb, sample_weights[idx].to(dev))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                seen += len(idx)
            history["epoch"].append(epoch + (k + 1) / evals_per_epoch)
            history["train loss"].append(total / max(seen, 1))
            if val is not None:
                val_loss, val_acc = evaluate(model, val)
                history["val loss"].append(val_loss)
                history["val accuracy"].append(val_acc)
    history["seconds"] = [time.perf_counter() - start]
    line = f"{label + ': ' if label else ''}{epochs} epoch(s) on {n} images in "
    line += f"{history['seconds'][0]:.1f} s, final training loss {history['train loss'][-1]:.3f}"
    if val is not None:
        line += f", {val_name} loss {history['val loss'][-1]:.3f}"
        line += f", accuracy {history['val accuracy'][-1]:.3f}"
    print(line, flush=True)
    return history
