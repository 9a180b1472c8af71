"""Fashion-MNIST as preloaded tensors, found offline.

Per-sample PIL transforms cost seconds per epoch on the course's 2-core machines; decoding the IDX
files once into one float tensor makes an epoch's data handling almost free (see the README's
figures). The lookup order lets a cluster, a laptop and CI each point at their own copy.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_TORCHVISION_ROOT = Path.home() / ".cache" / "dlcourse"

# sha256 of the *decompressed* IDX payloads: the Debian package recompresses the upstream .gz
# files, so hashes of the archives differ between sources while the contents must not.
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

VAL_SIZE = 5000
SPLIT_SEED = 20240901  # fixed forever: changing it would move images between train and validation
SMOKE_SIZES = {"train": 2048, "val": 512, "test": 1024}


class DataNotFoundError(FileNotFoundError):
    """Raised with every place that was searched, so the message says what to do next."""


def smoke_mode() -> bool:
    """True when `DLCOURSE_SMOKE=1`: CI executes every notebook top to bottom in this mode."""
    return os.environ.get("DLCOURSE_SMOKE", "").strip() not in ("", "0", "false", "False")


def epochs(n: int) -> int:
    """The number of epochs to train: `n`, or 1 in smoke mode."""
    return 1 if smoke_mode() else n


def steps(n: int, smoke: int = 5) -> int:
    """The number of optimisation steps: `n`, or `smoke` in smoke mode."""
    return min(n, smoke) if smoke_mode() else n


def candidate_dirs() -> list[Path]:
    """Where Fashion-MNIST is looked for, in order."""
    dirs = []
    if env := os.environ.get("DLCOURSE_DATA"):
        dirs += [Path(env), Path(env) / "FashionMNIST" / "raw"]
    dirs.append(DEBIAN_DIR)
    root = Path(os.environ.get("DLCOURSE_TORCHVISION_ROOT", DEFAULT_TORCHVISION_ROOT))
    dirs.append(root / "FashionMNIST" / "raw")
    return dirs


def _has_files(d: Path) -> bool:
    return all((d / f"{name}.gz").is_file() or (d / name).is_file() for name in SHA256)


def find_fashion_mnist(download: bool = False) -> Path:
    """The first directory holding all four IDX files; optionally download with torchvision."""
    dirs = candidate_dirs()
    for d in dirs:
        if _has_files(d):
            return d
    if download:
        from torchvision.datasets import FashionMNIST

        root = dirs[-1].parent.parent
        try:
            FashionMNIST(str(root), train=True, download=True)
            FashionMNIST(str(root), train=False, download=True)
        except Exception as exc:  # noqa: BLE001 - any network or disk failure gets the same advice
            msg = _not_found_message(dirs, f"download into {root} failed: {exc}")
            raise DataNotFoundError(msg) from exc
        if _has_files(dirs[-1]):
            return dirs[-1]
    raise DataNotFoundError(_not_found_message(dirs))


def _not_found_message(dirs: list[Path], extra: str = "") -> str:
    looked = "\n".join(f"  - {d}" for d in dirs)
    msg = (
        "Fashion-MNIST was not found. Looked in:\n"
        f"{looked}\n"
        "Fix one of: `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu); "
        "set DLCOURSE_DATA to a folder holding the four *-ubyte.gz files; "
        "or run `python -m dlcourse data --download` where the internet is reachable."
    )
    return f"{msg}\n{extra}" if extra else msg


def _read_idx(d: Path, name: str, verify: bool) -> torch.Tensor:
    path = d / f"{name}.gz"
    raw = gzip.decompress(path.read_bytes()) if path.is_file() else (d / name).read_bytes()
    if verify and hashlib.sha256(raw).hexdigest() != SHA256[name]:
        raise ValueError(
            f"{path} does not match the published Fashion-MNIST contents (sha256 mismatch); "
            "delete it and install the data again."
        )
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


@dataclass(frozen=True)
class Split:
    """Images as float32 (N, 1, 28, 28) in [0, 1] and labels as int64 (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Mini-batches by slicing the preloaded tensors: no per-sample Python work."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                yield self.x[start : start + batch_size], self.y[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                yield self.x[idx], self.y[idx]

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class FashionMNIST:
    train: Split
    val: Split
    test: Split


def load_fashion_mnist(
    val_size: int = VAL_SIZE, smoke: bool | None = None, verify: bool = True
) -> FashionMNIST:
    """Train / validation / test splits; the validation split is the same on every machine.

    In smoke mode each split is a small subset of the real data (sizes in SMOKE_SIZES).
    """
    d = find_fashion_mnist()
    xtr = _read_idx(d, "train-images-idx3-ubyte", verify)
    ytr = _read_idx(d, "train-labels-idx1-ubyte", verify)
    xte = _read_idx(d, "t10k-images-idx3-ubyte", verify)
    yte = _read_idx(d, "t10k-labels-idx1-ubyte", verify)
    perm = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = perm[:val_size], perm[val_size:]

    def split(x: torch.Tensor, y: torch.Tensor) -> Split:
        return Split(x.unsqueeze(1).float().div_(255), y.long())

    data = FashionMNIST(
        train=split(xtr[train_idx], ytr[train_idx]),
        val=split(xtr[val_idx], ytr[val_idx]),
        test=split(xte, yte),
    )
    if smoke_mode() if smoke is None else smoke:
        n = SMOKE_SIZES
        data = FashionMNIST(**{k: Split(s.x[: n[k]], s.y[: n[k]]) for k, s in vars(data).items()})
    return data
