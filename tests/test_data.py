import gzip
import shutil

import pytest
import torch

from dlcourse import data


@pytest.fixture(scope="module")
def fmnist():
    return data.load_fashion_mnist(smoke=False)


def test_splits_have_the_published_sizes_and_ranges(fmnist):
    assert (len(fmnist.train), len(fmnist.val), len(fmnist.test)) == (55000, 5000, 10000)
    assert fmnist.train.x.shape[1:] == (1, 28, 28) and fmnist.train.x.dtype == torch.float32
    assert 0.0 == fmnist.test.x.min() and fmnist.test.x.max() == 1.0
    assert fmnist.train.y.dtype == torch.int64
    assert torch.bincount(fmnist.test.y).tolist() == [1000] * 10


def test_validation_split_is_fixed_and_disjoint(fmnist):
    again = data.load_fashion_mnist(smoke=False)
    assert torch.equal(fmnist.val.x, again.val.x) and torch.equal(fmnist.val.y, again.val.y)
    # train + val together are the 60k training images, each exactly once (compare pixel sums).
    full = data._read_idx(data.find_fashion_mnist(), "train-images-idx3-ubyte", verify=False)
    ours = torch.cat([fmnist.train.x, fmnist.val.x]).mul(255).round().sum(dim=(1, 2, 3))
    assert torch.equal(ours.sort().values, full.float().sum(dim=(1, 2)).sort().values)


def test_smoke_mode_gives_a_small_real_subset(monkeypatch, fmnist):
    monkeypatch.setenv("DLCOURSE_SMOKE", "1")
    small = data.load_fashion_mnist()
    assert {k: len(v) for k, v in vars(small).items()} == data.SMOKE_SIZES
    assert torch.equal(small.test.x, fmnist.test.x[: data.SMOKE_SIZES["test"]])
    assert data.epochs(30) == 1 and data.steps(1000, smoke=7) == 7
    monkeypatch.setenv("DLCOURSE_SMOKE", "0")
    assert data.epochs(30) == 30 and not data.smoke_mode()


def test_batches_cover_every_sample_once(fmnist):
    split = data.Split(fmnist.val.x[:1000], torch.arange(1000))
    seen = torch.cat([y for _, y in split.batches(128, shuffle=True)])
    assert seen.sort().values.tolist() == list(range(1000))
    assert [len(y) for _, y in split.batches(300)] == [300, 300, 300, 100]


def test_env_folder_comes_first_and_corruption_is_caught(tmp_path, monkeypatch):
    for f in data.find_fashion_mnist().iterdir():
        shutil.copy(f, tmp_path)
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path))
    assert data.find_fashion_mnist() == tmp_path
    raw = bytearray(gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz does not match"):
        data.load_fashion_mnist()


def test_missing_data_lists_every_place_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("DLCOURSE_TORCHVISION_ROOT", str(tmp_path / "tv"))
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(data.DataNotFoundError) as err:
        data.find_fashion_mnist()
    msg = str(err.value)
    for place in ("nowhere", "no-debian", "tv/FashionMNIST/raw", "apt-get install"):
        assert place in msg
