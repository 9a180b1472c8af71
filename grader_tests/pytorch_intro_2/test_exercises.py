"""Hidden tests for the exercises of pytorch_intro_2: each test cell's points, from the grader.

The student's functions run in the sandboxed student process on inputs chosen here; the
expected values come from PyTorch (nn.Conv2d's own output sizes, parameter counts of modules
built here) or from properties checked here (a shifted image is a crop of its padded input,
a resumed run continues bit for bit).
"""

import torch
import torch.nn as nn

from dlcourse.grading import grade_cell, points, public

CASES = [(28, 3, 1, 1), (28, 5, 1, 0), (28, 3, 2, 1), (7, 7, 1, 0), (13, 4, 3, 2), (32, 3, 2, 0),
         (1, 1, 1, 0), (100, 11, 4, 2), (9, 2, 2, 0), (64, 7, 2, 3)]  # fmt: skip


def probe_count(ns):
    count = ns["count_parameters"]
    lin = nn.Linear(10, 5)
    plain = count(lin)
    lin.bias.requires_grad_(False)
    frozen = count(lin)
    return [plain, frozen, count(nn.BatchNorm2d(3)), count(nn.Conv2d(3, 7, 5))]


def probe_sizes(ns, cases):
    return [ns["conv_output_size"](n, k, s, p) for n, k, s, p in cases]


def probe_cnn(ns, x):
    torch.manual_seed(0)
    model = ns["SmallCNN"]()
    with torch.no_grad():
        out = model.eval()(x)
    return {
        "shape": list(out.shape),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "batchnorms": sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()),
    }


def probe_shift(ns, x, max_shift, seed):
    return ns["random_shift"](x, max_shift, torch.Generator().manual_seed(seed))


def probe_checkpoint(ns):
    import os
    import tempfile
    from pathlib import Path

    import torch.nn.functional as F

    def tiny():
        return nn.Sequential(
            nn.Conv2d(1, 4, 3),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 26 * 26, 10),
        )

    def step(model, opt, seed):
        g = torch.Generator().manual_seed(seed)
        x, y = torch.rand(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    torch.manual_seed(1)
    a = tiny()
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-3)
    step(a, opt_a, 1)
    step(a, opt_a, 2)
    fd, name = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    path = Path(name)
    ns["save_checkpoint"](path, a, opt_a, 11)
    torch.manual_seed(2)
    b = tiny()
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-3)
    epoch = ns["load_checkpoint"](path, b, opt_b)
    path.unlink()
    step(a, opt_a, 3)
    step(b, opt_b, 3)
    differ = [
        k for (k, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True)
        if not torch.equal(pa, pb)
    ]  # fmt: skip
    return {"epoch": epoch, "differ": differ}


@grade_cell("intro2_count_test")
@points(1)
def test_count_parameters(student):
    """count_parameters counts trainable parameters only (frozen ones and buffers do not count)."""
    got = student.run(probe_count)
    want = [55, 50, 6, 3 * 7 * 25 + 7]
    assert got == want, (
        f"counts {got} for Linear(10, 5), its frozen bias, BatchNorm2d(3), Conv2d(3, 7, 5); "
        f"expected {want}"
    )


@grade_cell("intro2_conv_size_test")
@points(1)
def test_conv_output_size_matches_conv2d(student):
    """conv_output_size agrees with nn.Conv2d for ten sizes, kernels, strides and paddings."""
    got = student.run(probe_sizes, cases=CASES[:5] + CASES[7:])
    for (n, k, s, p), size in zip(CASES[:5] + CASES[7:], got, strict=True):
        want = nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n)).shape[-1]
        assert size == want, (
            f"conv_output_size(n={n}, kernel={k}, stride={s}, padding={p}) = {size}, "
            f"nn.Conv2d gives {want}"
        )


@grade_cell("intro2_conv_size_test")
@points(1)
def test_conv_output_size_by_hand(student):
    """conv_output_size(32, 3, 2, 0) is 15 and conv_output_size(1, 1) is 1."""
    got = student.run(probe_sizes, cases=[CASES[5], CASES[6]])
    assert got == [15, 1], (
        f"conv_output_size gave {got} for (32, 3, 2, 0) and (1, 1); expected [15, 1]"
    )


@public
@grade_cell("intro2_cnn_test")
@points(1)
def test_small_cnn_shape_and_size(student):
    """SmallCNN maps (N, 1, 28, 28) to (N, 10) logits with 20,586 trainable parameters."""
    out = student.run(probe_cnn, x=torch.rand(3, 1, 28, 28))
    assert out["shape"] == [3, 10], f"SmallCNN gave logits of shape {out['shape']}"
    assert out["trainable"] == 20586, f"{out['trainable']:,} trainable parameters, not 20,586"


@grade_cell("intro2_cnn_test")
@points(1)
def test_small_cnn_has_two_batchnorms(student):
    """SmallCNN has one BatchNorm2d per block (two)."""
    out = student.run(probe_cnn, x=torch.rand(2, 1, 28, 28))
    assert out["batchnorms"] == 2, f"{out['batchnorms']} BatchNorm2d layers, expected 2"


@grade_cell("intro2_shift_test")
@points(1)
def test_random_shift_keeps_shape_and_zero_shift(student):
    """random_shift keeps the shape, and max_shift=0 returns the images unchanged."""
    x = torch.rand(4, 2, 7, 9, generator=torch.Generator().manual_seed(3))
    y = student.run(probe_shift, x=x, max_shift=2, seed=0)
    assert tuple(y.shape) == tuple(x.shape), f"shape {tuple(y.shape)}, expected {tuple(x.shape)}"
    torch.testing.assert_close(student.run(probe_shift, x=x, max_shift=0, seed=0), x)


@grade_cell("intro2_shift_test")
@points(1)
def test_random_shift_is_a_crop_of_the_padded_image(student):
    """Each shifted image is an H x W crop of its zero-padded input, at its own offset."""
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(4)) + 0.1
    y = student.run(probe_shift, x=x, max_shift=3, seed=1)
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3))
    for i in range(len(x)):
        ok = any(
            torch.equal(y[i], padded[i, :, dy : dy + 8, dx : dx + 8])
            for dy in range(7)
            for dx in range(7)
        )
        assert ok, f"image {i} is not a crop of its padded input at any offset in 0..6"


@grade_cell("intro2_ckpt_test")
@points(2)
def test_checkpoint_resumes_exactly(student):
    """Save, load into fresh objects: one more step gives bit-identical parameters and buffers."""
    out = student.run(probe_checkpoint)
    assert out["epoch"] == 11, f"load_checkpoint returned {out['epoch']!r}, the saved epoch was 11"
    assert not out["differ"], (
        f"after resuming these differ from the uninterrupted run: {out['differ']}"
    )
