"""Train CW1's reference `MyResNet` into weights/ (`dlcourse train-reference cw1`).

The model class and the recipe (`EPOCHS`, `train_model`) come from the instructor notebook, so
the weights belong to the solution the accuracy tiers are measured against. `--baseline` first
clears the notebook's solution regions with nbgrader's own ClearSolutions (what the release does)
and trains the baseline students are given: the measurement behind the lowest tier.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
import torch

from dlcourse import course, data, device, metrics, notebook, weights

NOTEBOOK = course.ROOT / "source" / "cw1" / "cw1.ipynb"
WEIGHTS_NAME = "cw1_model.pt"
BASELINE_NAME = "cw1_baseline.pt"


def released_definitions(path: Path) -> dict[str, Any]:
    """The notebook's definitions as students receive them (solution regions cleared)."""
    from nbgrader.preprocessors import ClearSolutions

    nb, _ = ClearSolutions().preprocess(nbformat.read(path, as_version=4), {})
    with tempfile.TemporaryDirectory(prefix="dlcourse-cw1-") as tmp:
        released = Path(tmp) / path.name
        nbformat.write(nb, released)
        return notebook.load_trusted(released)


def evaluate(model: torch.nn.Module, split: data.Split, batch_size: int = 1000) -> float:
    """Accuracy in evaluation mode, as the grader computes it (labels never leave this process)."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x) for x, _ in split.batches(batch_size)])
    return metrics.accuracy(logits, split.y)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dlcourse train-reference cw1", description=__doc__)
    p.add_argument("--baseline", action="store_true", help="train the released baseline instead")
    p.add_argument("--epochs", type=int, help="default: the notebook's EPOCHS")
    p.add_argument("--max-steps", type=int, help="stop after this many optimisation steps")
    p.add_argument("--out", type=Path, help="default: weights/cw1_model.pt (cw1_baseline.pt)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if not NOTEBOOK.is_file():
        print(f"error: {NOTEBOOK} not found; run from a full course checkout", file=sys.stderr)
        return 1
    ns = released_definitions(NOTEBOOK) if args.baseline else notebook.load_trusted(NOTEBOOK)
    out = args.out or weights.WEIGHTS_DIR / (BASELINE_NAME if args.baseline else WEIGHTS_NAME)
    device.seed_everything(args.seed)
    ds = data.load_fashion_mnist(smoke=False)
    model = ns["MyResNet"]()
    epochs = args.epochs or ns["EPOCHS"]
    n_params = sum(p.numel() for p in model.parameters())
    what = "baseline MyResNet" if args.baseline else "MyResNet"
    threads = torch.get_num_threads()
    print(f"training {what} ({n_params:,} parameters) for {epochs} epochs, {threads} threads")
    start = time.perf_counter()
    ns["train_model"](model, ds.train, epochs, max_steps=args.max_steps)
    training_s = time.perf_counter() - start
    start = time.perf_counter()
    test_acc = evaluate(model, ds.test)
    eval_s = time.perf_counter() - start
    val_acc = evaluate(model, ds.val)
    print(f"trained in {training_s:.0f} s; validation {val_acc:.2%}, test {test_acc:.2%}")
    print(f"{len(ds.test)} test images evaluated in {eval_s:.1f} s")

    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, out)
    if out.resolve().parent == weights.WEIGHTS_DIR:
        entry = weights.record(
            out,
            test_accuracy=round(test_acc, 4),
            val_accuracy=round(val_acc, 4),
            training_time_s=round(training_s),
            test_eval_time_s=round(eval_s, 1),
            epochs=epochs,
            parameters=n_params,
            device=f"cpu, {threads} threads, torch {torch.__version__}",
            command=shlex.join(["dlcourse", "train-reference", "cw1", *(argv or [])]),
        )
        print(f"recorded {out.name} in weights/manifest.json: {entry['sha256'][:12]}...")
    else:
        print(f"saved {out}")
    return 0
