"""The course's Fashion-MNIST classifier: the feature space in which CW2's samples are judged.

Inception weights cannot be downloaded here, and Inception features of 32 x 32 greyscale clothes
say little anyway, so FID, KID and class coverage use a small CNN trained on Fashion-MNIST (a
known practice for MNIST-like data). The architecture lives here once: the reference script
trains it (`dlcourse train-reference cw2`) and the grader loads its weights from weights/.
It works on GAN-format images, (N, 1, 32, 32) in [-1, 1]; `to_gan_range` brings the dataset's
(N, 1, 28, 28) images in [0, 1] there. It is small so that 10,000 images take about a second on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_NAME = "fmnist_classifier.pt"
FEATURE_DIM = 128


def to_gan_range(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) images in [0, 1] -> (N, 1, 32, 32) in [-1, 1], background -1 (DCGAN input)."""
    if x.dim() != 4 or x.shape[-2:] != (28, 28):
        raise ValueError(f"expected (N, 1, 28, 28) images, got {tuple(x.shape)}")
    return F.pad(x * 2 - 1, (2, 2, 2, 2), value=-1.0)


class FashionClassifier(nn.Module):
    """Three conv blocks and a 128-unit feature layer; `features` is what FID and KID compare."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(block(1, 16), block(16, 32), block(32, 64), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(64 * 4 * 4, FEATURE_DIM), nn.ReLU(inplace=True))
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def load_classifier() -> FashionClassifier:
    """The trained course classifier from weights/, in eval mode (checksum verified)."""
    from dlcourse import weights

    path = weights.WEIGHTS_DIR / WEIGHTS_NAME
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `dlcourse train-reference cw2 --only classifier` to train it"
        )
    model = FashionClassifier()
    model.load_state_dict(weights.load_state_dict(path))
    return model.eval()


@torch.no_grad()
def embed(
    model: FashionClassifier, images: torch.Tensor, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, 128) and predicted classes (N,) of GAN-format images, in float64 / int64."""
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 32, 32):
        raise ValueError(f"expected (N, 1, 32, 32) images in [-1, 1], got {tuple(images.shape)}")
    feats, preds = [], []
    for start in range(0, len(images), batch_size):
        f = model.features(images[start : start + batch_size].float())
        feats.append(f.double())
        preds.append(model.head(f).argmax(dim=1))
    return torch.cat(feats), torch.cat(preds)
