"""Reference weights for Introduction to PyTorch I: the notebook's own MLP and loops, 5 epochs."""

from __future__ import annotations

import argparse
import platform
import time

import torch

from dlcourse import course, data, device, weights
from dlcourse.notebook import load_trusted


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dlcourse train-reference pytorch_intro_1")
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args(argv)

    nb = course.get("pytorch_intro_1").notebooks[0]
    ns = load_trusted(nb)
    dev = device.get_device()
    device.seed_everything(0)
    fmnist = data.load_fashion_mnist()
    model = ns["MLP"](hidden=256).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for epoch in range(data.epochs(args.epochs)):
        loss = ns["train_one_epoch"](model, fmnist.train, optimizer)
        print(f"epoch {epoch + 1}: loss {loss:.4f}, val {ns['evaluate'](model, fmnist.val):.4f}")
    seconds = time.perf_counter() - start
    test_acc = ns["evaluate"](model, fmnist.test)
    out = weights.WEIGHTS_DIR / "intro1_mlp.pt"
    torch.save(model.cpu().state_dict(), out)
    entry = weights.record(
        out,
        test_accuracy=round(test_acc, 4),
        training_time_s=round(seconds, 1),
        device=f"{dev.type} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads)",
        command=f"dlcourse train-reference pytorch_intro_1 --epochs {args.epochs}",
        smoke=data.smoke_mode(),
    )
    print(f"saved {out}: {entry}")
    return 0
