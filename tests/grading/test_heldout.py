"""The private test set (dlcourse.grading.heldout) and what it is for: a submission that memorises
the public test set scores 100% on the public images and no accuracy marks from the grader.

The memoriser (tests/fixtures/grading/submissions/memoriser/) looks up the sha256 of each image's
pixels in a table of the public test set's hashes and labels. The table is written here into
the weight file, as two buffers its `MLP` registers, so the notebook holds no large constant and
the weights still load strictly; it has no fallback model, so everything it scores it owes to
the table.
"""

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from dlcourse import data, metrics, notebook, weights
from dlcourse.grading import heldout, runner, spec

MEMORISER = Path(__file__).resolve().parents[1] / "fixtures/grading/submissions/memoriser"
POSITION_COUNTER = MEMORISER.parent / "position_counter"
ACCURACY_TESTS = {
    "test_mlp::test_accuracy_above_80", "test_mlp::test_accuracy_above_83",
    "test_mlp::test_accuracy_above_86",
}  # fmt: skip


def _hashes(x: torch.Tensor) -> list[bytes]:
    pixels = (x * 255).round().to(torch.uint8).reshape(len(x), -1)
    return [hashlib.sha256(row.numpy().tobytes()).digest() for row in pixels]


@pytest.fixture(scope="module")
def public() -> data.Split:
    return data.load_fashion_mnist(smoke=False).test


def test_private_split_changes_every_image_and_no_label(public):
    private = heldout.private_test_split()
    assert private.x.shape == public.x.shape and private.x.dtype == torch.float32
    assert torch.equal(private.y, public.y)
    assert 0 <= private.x.min() and private.x.max() <= 1
    on_grid = private.x * 255
    assert torch.equal(on_grid, on_grid.round()), "private images leave the 1/255 grid"
    known = set(_hashes(public.x))
    assert len(known) == len(public)
    same = sum(h in known for h in _hashes(private.x))
    assert same == 0, f"{same} private images are byte-identical to a public test image"


def test_same_seed_gives_bit_identical_images_and_another_seed_others(public):
    x = public.x[:2000]
    first, again = heldout.perturb(x, 12345), heldout.perturb(x.clone(), 12345)
    assert torch.equal(first, again)
    other = heldout.perturb(x, 12346)
    differ = (other != first).reshape(len(x), -1).any(dim=1)
    assert differ.float().mean() > 0.99, f"only {differ.float().mean():.1%} of images differ"
    assert torch.equal(heldout.private_test_split().x, heldout.perturb(public.x, heldout.seed()))
    assert heldout.private_test_split() is heldout.private_test_split()  # built once


def test_seed_comes_from_the_staff_file_or_the_environment(monkeypatch):
    monkeypatch.delenv(heldout.SEED_ENV, raising=False)
    assert heldout.SEED_FILE.is_file() and heldout.SEED_FILE.parent.name == "grader_tests"
    assert isinstance(heldout.seed(), int)
    monkeypatch.setenv(heldout.SEED_ENV, "77")
    assert heldout.seed() == 77
    monkeypatch.setenv(heldout.SEED_ENV, "seventy")
    with pytest.raises(ValueError, match="not an integer"):
        heldout.seed()


def _memoriser(folder: Path, public: data.Split) -> Path:
    """The fixture notebook and a weight file: the reference MLP plus the public hash table."""
    folder.mkdir()
    shutil.copy(MEMORISER / "pytorch_intro_1.ipynb", folder)
    keys = [int.from_bytes(h[:8], "little", signed=True) for h in _hashes(public.x)]
    state = weights.load_state_dict("intro1_mlp.pt")
    state["known_hashes"] = torch.tensor(keys, dtype=torch.int64)
    state["known_labels"] = public.y.clone()
    torch.save(state, folder / "intro1_mlp.pt")
    return folder


@pytest.mark.slow
def test_memoriser_is_perfect_on_public_images_and_earns_no_accuracy_marks(tmp_path, public):
    sub = _memoriser(tmp_path / "memoriser", public)
    ns = notebook.load_trusted(sub / "pytorch_intro_1.ipynb")  # our own fixture: trusted
    model = ns["MLP"](hidden=256)
    model.load_state_dict(torch.load(sub / "intro1_mlp.pt", weights_only=True), strict=True)
    with torch.no_grad():
        assert metrics.accuracy(model(public.x), public.y) == 1.0

    graded = runner.grade_submission(sub, spec.load("pytorch_intro_1"), tmp_path / "out")
    scores = {t.name: (t.score, t.max_score) for t in graded.tests}
    assert scores["test_mlp::test_weights_load_strictly"] == (2, 2), graded  # as submitted
    for name in ACCURACY_TESTS:
        assert scores[name][0] == 0, (name, graded)
    outputs = " ".join(t.output for t in graded.tests if t.name in ACCURACY_TESTS)
    # Its table is refused before any image is sent (integers hold any bytes); were it allowed,
    # the private images would still find no hash in it (test_private_split_changes_every_image)
    assert "tensor known_hashes of shape (10000,) holds int64 numbers" in outputs


def test_sending_order_is_a_fixed_permutation_that_the_grader_undoes():
    order = heldout.sending_order()
    assert torch.equal(order.sort().values, torch.arange(heldout.TEST_IMAGES))
    assert torch.equal(order, heldout.sending_order())  # the same for every grading
    assert (order == torch.arange(len(order))).float().mean() < 0.01
    logits = torch.randn(heldout.TEST_IMAGES, 10)
    assert torch.equal(heldout.restore_order(logits[order], order), logits)
    assert heldout.restore_order("not a tensor", order) == "not a tensor"  # for the shape check


@pytest.mark.slow
def test_answering_by_position_earns_no_accuracy_marks(tmp_path, public):
    """Labels stored in the weights (exactly the MLP's 203,530 numbers) and handed out by how
    many images came before: perfect on the images in their published order, chance on the
    order the grader sends them in."""
    sub = tmp_path / "position_counter"
    sub.mkdir()
    shutil.copy(POSITION_COUNTER / "pytorch_intro_1.ipynb", sub)
    state = weights.load_state_dict("intro1_mlp.pt")
    state["net.1.weight"].view(-1)[:10000] = public.y.float()
    torch.save(state, sub / "intro1_mlp.pt")
    ns = notebook.load_trusted(sub / "pytorch_intro_1.ipynb")  # our own fixture: trusted
    model = ns["MLP"](hidden=256)
    model.load_state_dict(torch.load(sub / "intro1_mlp.pt", weights_only=True), strict=True)
    with torch.no_grad():
        in_order = torch.cat([model(xb) for xb in public.x.split(1000)])
    assert metrics.accuracy(in_order, public.y) == 1.0

    graded = runner.grade_submission(sub, spec.load("pytorch_intro_1"), tmp_path / "out")
    scores = {t.name: (t.score, t.max_score) for t in graded.tests}
    assert scores["test_mlp::test_parameter_count"] == (1, 1), graded  # within the size rule
    for name in ACCURACY_TESTS:
        assert scores[name][0] == 0, (name, graded)
