"""The private test set the hidden tests mark accuracy and quality on.

The public Fashion-MNIST test images can be memorised: a notebook that maps each image's hash to
its label scores 100% on them without learning anything. The grader therefore marks on the same
10,000 images (same labels) under an intensity perturbation drawn with a staff-only seed: per
image a gamma in [1/GAMMA, GAMMA] (log-uniform), then a scale in SCALE, stored on the dataset's
1/255 grid. Black stays black and every garment stays as it is drawn, a little lighter or
darker. Every image's bytes change (tests/grading/test_heldout.py checks all 10,000), so a hash
or byte lookup finds nothing, and without the seed the set cannot be rebuilt.

Measured with bench/calibrate_heldout.py before choosing: shifts of up to 2 pixels plus mirror
images cost the course MLP 33 accuracy points (87.1% -> 54.5%), and a lookup that carries the
10,000 public images and tries all 50 shifts and flips still finds the source of 86.5% of them
(the right label for 97.5%); pixel noise (sd 0.02 to 0.05 on the garment) cost CW1's reference
0.8 to 2.9 points (on 2,500 images). What would
defeat a lookup that carries the public images also changes what the tiers measure, so this set
defeats lookups that do not (grader_tests/README.md, "Private test set").

A model can also carry the public test images themselves (packed, within its size limit) and
answer with the label of the nearest one: the perturbation does not stop that. Its behaviour
gives it away: it knows the test images, not the garments. So `evaluation_set()` sends, mixed in
among the 10,000 private test images in a seeded order, TRAIN_SHARE of the students' own
training images under the same kind of perturbation (`train_share()`, drawn with the staff
seed). They are never marked on their own. A trained model scores at least as well on images it
was trained on; a lookup of the public test images scores far worse on them than on the test
images. The hidden tests flag a model whose accuracy there is far below its test accuracy and
withhold its accuracy marks for a person to look at (grader_tests/cw1/test_model.py states the
rule and its calibration).

The seed lives in grader_tests/heldout.toml (`seed = <int>`; grader_tests/ is never released);
DLCOURSE_HELDOUT_SEED overrides it (another term, a leaked seed, or a test).

The student kit has no seed and no private set: its public checks (`dlcourse validate` there)
only time a model on 10,000 images, so there `private_test_split()` is `stand_in_split()`,
images of the same shape drawn with a public seed. The kit says so with STUDENT_KIT in its own
dlcourse/course.py; the course repository's course.py has no such name.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import sys
from dataclasses import dataclass

import torch

from dlcourse import course, data
from dlcourse.course import GRADER_TESTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

SEED_FILE = GRADER_TESTS / "heldout.toml"
SEED_ENV = "DLCOURSE_HELDOUT_SEED"
GAMMA = 1.25  # x ** gamma, gamma log-uniform in [0.8, 1.25]: mid-tones lighter or darker
SCALE = (0.8, 0.95)  # then times a factor in this range: never 1, so every image changes
TEST_IMAGES = 10_000
TRAIN_SHARE = 2_000  # training images mixed into what the hidden tests send (never marked)
STAND_IN_SEED = 0  # public: the stand-in is no secret


def seed() -> int:
    """The staff-only seed: DLCOURSE_HELDOUT_SEED, else grader_tests/heldout.toml."""
    if (env := os.environ.get(SEED_ENV, "").strip()) != "":
        try:
            return int(env)
        except ValueError:
            raise ValueError(f"{SEED_ENV}={env!r} is not an integer") from None
    if not SEED_FILE.is_file():
        raise FileNotFoundError(
            f"{SEED_FILE} is missing: the private test set needs its seed there "
            f"(`seed = <int>`, staff only) or in {SEED_ENV}"
        )
    value = tomllib.loads(SEED_FILE.read_text()).get("seed")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{SEED_FILE}: `seed = <int>` is required")
    return value


def perturb(x: torch.Tensor, seed_value: int) -> torch.Tensor:
    """Images (N, 1, 28, 28) in [0, 1] under the seeded perturbation, on the 1/255 grid.

    One generator draws the gammas, then the scales, on the CPU, so the same seed gives
    bit-identical images on every machine.
    """
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected (N, 1, 28, 28) images, got {tuple(x.shape)}")
    x = x.detach().cpu().float()
    g = torch.Generator().manual_seed(seed_value)
    gamma = ((torch.rand(len(x), generator=g) * 2 - 1) * math.log(GAMMA)).exp()
    scale = SCALE[0] + torch.rand(len(x), generator=g) * (SCALE[1] - SCALE[0])
    x = x.pow(gamma[:, None, None, None]) * scale[:, None, None, None]
    return (x * 255).round().div(255)


@functools.cache
def public_test_split() -> data.Split:
    """The 10,000 public test images and labels, as `data.load_fashion_mnist(smoke=False).test`.

    Read once per process, and without the 60,000 training images, which load_fashion_mnist
    decompresses and checks too (0.5 CPU seconds of every grading). Shared: never change it in
    place.
    """
    d = data.find_fashion_mnist()
    x = data._read_idx(d, "t10k-images-idx3-ubyte", verify=True)
    y = data._read_idx(d, "t10k-labels-idx1-ubyte", verify=True)
    return data.Split(x.unsqueeze(1).float().div_(255), y.long())


@functools.cache
def _private_test_split(seed_value: int) -> data.Split:
    test = public_test_split()
    return data.Split(perturb(test.x, seed_value), test.y.clone())


def private_test_split(seed_value: int | None = None) -> data.Split:
    """The 10,000 test images, perturbed with the staff seed (or `seed_value`); labels unchanged.

    Built once per process: every hidden-test module of a submission shares it. In the student
    kit (no seed there) it is `stand_in_split()`.
    """
    if seed_value is None and in_student_kit():
        return stand_in_split()
    return _private_test_split(seed() if seed_value is None else seed_value)


def _derived_seed(purpose: str, seed_value: int) -> int:
    """A seed of its own for each use of the staff seed (no draw repeats another's)."""
    digest = hashlib.sha256(f"{purpose} {seed_value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@functools.cache
def _train_share(seed_value: int) -> data.Split:
    train = data.load_fashion_mnist(smoke=False).train
    g = torch.Generator().manual_seed(_derived_seed("train share", seed_value))
    idx = torch.randperm(len(train), generator=g)[:TRAIN_SHARE]
    x = perturb(train.x[idx], _derived_seed("train share perturbation", seed_value))
    return data.Split(x, train.y[idx].clone())


def train_share(seed_value: int | None = None) -> data.Split:
    """TRAIN_SHARE of the training images (the split students train on), perturbed as the
    private test images are, chosen with the staff seed: images any trained model knows."""
    return _train_share(seed() if seed_value is None else seed_value)


@dataclass(frozen=True)
class EvaluationSet:
    """What a hidden test sends to a classifier: the private test images, then the training
    share. `test` and `train` are the two parts of a result for them (in this order)."""

    x: torch.Tensor
    y: torch.Tensor
    n_test: int

    def test(self, out: torch.Tensor) -> torch.Tensor:
        return out[: self.n_test]

    def train(self, out: torch.Tensor) -> torch.Tensor:
        return out[self.n_test :]


@functools.cache
def _evaluation_set(seed_value: int) -> EvaluationSet:
    test, share = _private_test_split(seed_value), _train_share(seed_value)
    return EvaluationSet(torch.cat([test.x, share.x]), torch.cat([test.y, share.y]), len(test))


def evaluation_set(seed_value: int | None = None) -> EvaluationSet:
    """The private test images followed by the training share (send them with
    `sending_order(len(x))`); in the student kit, stand-in images of the same size."""
    if seed_value is None and in_student_kit():
        stand_in = stand_in_split(TEST_IMAGES + TRAIN_SHARE)
        return EvaluationSet(stand_in.x, stand_in.y, TEST_IMAGES)
    return _evaluation_set(seed() if seed_value is None else seed_value)


def sending_order(n: int = TEST_IMAGES) -> torch.Tensor:
    """The order in which the hidden tests send the private images: a permutation drawn from
    the staff seed (the stand-in's public seed in the student kit).

    The private images keep the public test set's order, so a model that stores the 10,000
    public labels (10,000 numbers, well inside any size limit) and answers by counting the
    images it has been sent would score 100% on them sent in order. Sent in an order that only
    the seed determines, such a model is at chance, while a model that classifies each image
    on its own gives the same logits in any order: the marks stay the same for every grading.
    """
    seed_value = STAND_IN_SEED if in_student_kit() else seed()
    g = torch.Generator().manual_seed(_derived_seed("sending order", seed_value))
    return torch.randperm(n, generator=g)


def restore_order(out: object, order: torch.Tensor) -> object:
    """The student's outputs for `x[order]` put back in the test set's order.

    Anything that is not a tensor with one row per image is returned as it is, for the
    caller's own type and shape check to report.
    """
    if isinstance(out, torch.Tensor) and out.dim() >= 1 and len(out) == len(order):
        restored = torch.empty_like(out)
        restored[order] = out
        return restored
    return out


def in_student_kit() -> bool:
    """Whether this is the student kit's copy of the grading engine (see the module docstring)."""
    return getattr(course, "STUDENT_KIT", False) is True


@functools.cache
def stand_in_split(n: int = TEST_IMAGES) -> data.Split:
    """10,000 images shaped and valued as the private set's, for checks that measure cost.

    Uniform noise on the 1/255 grid with random labels, drawn with the public STAND_IN_SEED: a
    model costs the same CPU time on them as on the private images, and nothing can be learnt
    from them about the private set, nor marked on them (their labels mean nothing). No dataset
    is needed, so a push check needs no download.
    """
    g = torch.Generator().manual_seed(STAND_IN_SEED)
    x = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    return data.Split(x.float().div_(255), y)
