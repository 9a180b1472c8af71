"""The device helpers set global flags; a misspelt attribute would silently do nothing, so check
that each flag really changes."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch

# Imported before any test patches `torch.backends.mps.is_available`: torch._dynamo's import reads
# its `__wrapped__`, and under the patch it fails half-initialised, breaking every later test in
# this process that compiles or profiles.
import torch._dynamo  # noqa: F401

from dlcourse.device import get_device, seed_everything


@pytest.fixture(autouse=True)
def restore_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Put every flag and RNG back, so the order tests run in does not matter."""
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    # seed_everything sets CUBLAS_WORKSPACE_CONFIG; monkeypatch restores the environment.
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.delenv("DLCOURSE_DEVICE", raising=False)
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    torch.set_rng_state(rng[0])
    np.random.set_state(rng[1])
    random.setstate(rng[2])


def draw() -> tuple[list[float], list[float], float]:
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), random.random()


def test_seed_everything_turns_determinism_on() -> None:
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True

    seed_everything(0)

    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    # Observable on the CPU too: deterministic mode fills uninitialised memory with NaN, and ops
    # without a deterministic kernel warn instead of raising.
    assert torch.isnan(torch.empty(8)).all()
    with pytest.warns(UserWarning, match="deterministic"):
        torch.zeros(4).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))


def test_seed_everything_deterministic_false_turns_it_off() -> None:
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False

    seed_everything(0, deterministic=False)

    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is False
    assert torch.backends.cudnn.benchmark is True


def test_reseeding_repeats_torch_numpy_and_python_random() -> None:
    seed_everything(123)
    first = draw()
    assert draw() != first  # the generators moved on
    seed_everything(123)
    assert draw() == first
    seed_everything(124)
    again = draw()
    for a, b in zip(again, first, strict=True):
        assert a != b  # each of the three generators depends on the seed


def test_get_device_honours_dlcourse_device_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("DLCOURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_get_device_prefers_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert get_device() == torch.device(expected)


@pytest.mark.parametrize("forced", ["cuda", "cuda:0"])
def test_get_device_rejects_missing_cuda(monkeypatch: pytest.MonkeyPatch, forced: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("DLCOURSE_DEVICE", forced)
    with pytest.raises(RuntimeError, match=f"DLCOURSE_DEVICE={forced} but CUDA is not available"):
        get_device()


def test_get_device_rejects_missing_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("DLCOURSE_DEVICE", "mps")
    with pytest.raises(RuntimeError, match="Apple MPS is not available"):
        get_device()
