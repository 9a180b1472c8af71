"""Fashion-MNIST loading: the preloaded-tensor path vs torchvision's per-sample PIL path.

Run: .venv/bin/python bench/data_load.py   (prints medians over --repeats runs)
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
import torchvision.transforms as T

from dlcourse import data


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(2)

    fm = data.load_fashion_mnist(smoke=False)
    load = timed(lambda: data.load_fashion_mnist(smoke=False), args.repeats)
    epoch = timed(
        lambda: [None for _ in fm.train.batches(args.batch_size, shuffle=True)], args.repeats
    )

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for f in data.find_fashion_mnist().glob("*.gz"):  # torchvision reads the unpacked files
            (raw / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
            shutil.copy(f, raw)

        def tv_dataset():
            return torchvision.datasets.FashionMNIST(tmp, train=True, transform=T.ToTensor())

        tv_load = timed(tv_dataset, args.repeats)
        ds = tv_dataset()
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True)
        tv_epoch = timed(lambda: [None for _ in loader], args.repeats)

    print(f"{'path':<34}{'load (s)':>10}{'one epoch of batches (s)':>28}")
    print(f"{'dlcourse.data (preloaded tensors)':<34}{load:>10.2f}{epoch:>28.3f}")
    print(f"{'torchvision + ToTensor + DataLoader':<34}{tv_load:>10.2f}{tv_epoch:>28.3f}")
    print(f"per-epoch ratio (torchvision / preloaded): {tv_epoch / epoch:.0f}x")


if __name__ == "__main__":
    main()
