"""dlcourse.filters: the receptive-field measurement agrees with the layers' arithmetic, the
kernel-position diagram places as many windows as PyTorch computes outputs, and the filter-bank
figure draws one column per kernel; the receptive-field diagram highlights the field that
autograd measures, with every part labelled."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dlcourse import filters  # noqa: E402


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


@pytest.mark.parametrize(
    ("net", "width"),
    [
        (nn.Sequential(*[nn.Conv2d(1, 1, 3) for _ in range(3)]), 7),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3)), 8),
        (nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2), nn.Conv2d(1, 1, 3, dilation=4)), 13),
        (
            nn.Sequential(
                nn.Conv2d(1, 4, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.BatchNorm2d(4),
                Residual(4),
                Residual(4),
            ),
            19,
        ),  # fmt: skip
    ],
    ids=["three 3x3", "conv-pool-conv", "dilated", "strided stem + residual blocks"],
)
def test_receptive_field_width_follows_the_layers(net, width):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    field = filters.receptive_field_map(net, size=41)
    assert field.shape == (41, 41)
    assert filters.support_width(field) == width
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the net was changed"


def test_paths_concentrate_at_the_centre():
    field = filters.receptive_field_map(nn.Sequential(*[nn.Conv2d(1, 1, 3) for _ in range(4)]), 21)
    row = field[10]
    assert row.argmax() == 10 and torch.allclose(row, row.flip(0))
    assert row[10] > row[7] > row[6] > 0 and row[5] == 0
    assert filters.support_width(torch.zeros(5, 5)) == 0


@pytest.mark.parametrize(("size", "k", "s", "p", "d"), [(7, 3, 2, 1, 1), (8, 3, 2, 1, 1),
                         (7, 3, 1, 0, 2), (10, 4, 3, 2, 1), (5, 5, 1, 0, 1)])  # fmt: skip
def test_kernel_positions_match_pytorch(size, k, s, p, d):
    out = nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 1, size)).shape[-1]
    starts = filters._windows(size, k, s, p, d)
    assert len(starts) == out and starts == list(range(0, s * out, s))
    fig = filters.show_kernel_positions(size, k, s, p, d)
    assert f"{out}x{out} output" in fig._suptitle.get_text()
    plt.close(fig)


def test_kernel_positions_refuse_a_kernel_that_does_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        filters.show_kernel_positions(3, kernel_size=3, dilation=2)


def test_filter_bank_draws_a_column_per_kernel():
    image = torch.rand(20, 16)
    kernels = torch.randn(3, 3, 3)
    responses = F.conv2d(image[None, None], kernels[:, None])[0]
    fig = filters.show_filter_bank(kernels, responses, ["a", "b", "c"], image=image, title="t")
    assert len(fig.axes) == 2 * 4
    assert fig.axes[1].get_title().startswith("a\n3x3 kernel")
    plt.close(fig)
    with pytest.raises(ValueError, match="3 kernels but 2 responses"):
        filters.show_filter_bank(kernels, responses[:2])


@pytest.mark.parametrize(
    "layers",
    [[(3, 1), (2, 2), (3, 1)], [(3, 1, 1), (3, 1, 2), (3, 1, 4)], [(5, 2), (3, 3)]],
    ids=["conv-pool-conv", "dilated", "strided"],
)
def test_receptive_field_diagram_marks_the_measured_field(layers):
    """The input units the diagram highlights span the width autograd measures, and the figure
    names every row, each level's field and jump, and the field under the input."""
    net = nn.Sequential(*[nn.Conv2d(1, 1, k, stride=s, dilation=(layer + (1,))[2])
                          for layer in layers for k, s in [layer[:2]]])  # fmt: skip
    width = filters.support_width(filters.receptive_field_map(net, size=41))
    used = filters._field_units(layers)[0]
    assert max(used) - min(used) + 1 == width
    names = [f"layer {i}" for i in range(len(layers))]
    fig = filters.show_receptive_field(layers, names, title="t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert {"input", *names} <= set(texts)
    assert f"receptive field: {width} input units" in texts
    assert f"r = {width}, jump {torch.tensor([s for _, s, *_ in layers]).prod()}" in texts
    assert fig.axes[0].get_title() == "t"
    plt.close(fig)


def test_receptive_field_diagram_refuses_bad_input():
    with pytest.raises(ValueError, match="2 layers but 1 names"):
        filters.show_receptive_field([(3, 1), (3, 1)], ["a"])
    with pytest.raises(ValueError, match="at most 64"):
        filters.show_receptive_field([(3, 1, 2**i) for i in range(6)])
