"""Tests for compare/data/mnist.py: IDX parsing, file discovery, normalization, and the real datasets."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_data
from idx_files import NAMES, idx_bytes, make_dataset, write

from compare.data import mnist
from compare.data.mnist import DataError, find_files, load_dataset, read_idx

# --- read_idx ---------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_images_and_labels(tmp_path, gz):
    arrays = make_dataset(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    images = read_idx(tmp_path / (NAMES[0] + suffix))
    labels = read_idx(tmp_path / (NAMES[1] + suffix))
    assert images.dtype == torch.uint8 and images.shape == (5, 28, 28)
    assert labels.dtype == torch.uint8 and labels.shape == (5,)
    assert np.array_equal(images.numpy(), arrays[NAMES[0]])
    assert np.array_equal(labels.numpy(), arrays[NAMES[1]])


def test_read_idx_detects_gzip_by_content_not_suffix(tmp_path):
    labels = np.arange(7, dtype=np.uint8)
    path = write(tmp_path / "labels-without-gz-suffix", idx_bytes(labels), gz=True)
    assert read_idx(path).tolist() == list(range(7))


def test_bad_magic_number_names_the_file(tmp_path):
    path = write(tmp_path / "weird-file", idx_bytes(np.zeros(4, np.uint8), magic=0x00000D01))
    with pytest.raises(DataError, match="weird-file.*0x00000d01"):
        read_idx(path)


def test_truncated_file(tmp_path):
    content = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    path = write(tmp_path / "short-images", content[:-10])
    expected, actual = len(content), len(content) - 10
    with pytest.raises(DataError, match=f"short-images is truncated.*{expected} bytes.*{actual}"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = write(tmp_path / "tiny", idx_bytes(np.zeros((2, 28, 28), np.uint8))[:9])
    with pytest.raises(DataError, match="tiny is truncated"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    content = idx_bytes(np.zeros(3, np.uint8))
    path = write(tmp_path / "long-labels.gz", content + b"junk", gz=True)
    expected = f"long-labels.gz is followed by trailing bytes.*{len(content)} bytes.*{len(content) + 4}"
    with pytest.raises(DataError, match=expected):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    path = write(tmp_path / "broken.gz", good[: len(good) // 2])
    with pytest.raises(DataError, match="broken.gz is a corrupt or incomplete gzip file"):
        read_idx(path)


# --- finding files ----------------------------------------------------------

@pytest.mark.parametrize("layout", ["mnist", "MNIST/raw", "."])
def test_layouts(tmp_path, layout):
    folder = tmp_path / layout
    make_dataset(folder, gz=(layout != "MNIST/raw"))  # torchvision keeps the files uncompressed
    files = find_files("mnist", tmp_path)
    suffix = "" if layout == "MNIST/raw" else ".gz"
    assert files["train"] == (folder / (NAMES[0] + suffix), folder / (NAMES[1] + suffix))
    ds = load_dataset("mnist", tmp_path, download=False)
    assert ds.root == folder
    assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (3, 784)


def test_plain_and_gzip_files_can_be_mixed(tmp_path):
    make_dataset(tmp_path / "mnist", gz=True)
    (tmp_path / "mnist" / (NAMES[3] + ".gz")).rename(tmp_path / "mnist" / NAMES[3])  # gzip content, plain name
    assert find_files("mnist", tmp_path)["test"][1] == tmp_path / "mnist" / NAMES[3]
    assert load_dataset("mnist", tmp_path, download=False).y_test.shape == (3,)


def test_missing_files_without_download(tmp_path):
    make_dataset(tmp_path / "mnist")
    (tmp_path / "mnist" / (NAMES[2] + ".gz")).unlink()
    with pytest.raises(DataError) as info:
        load_dataset("mnist", tmp_path, download=False)
    message = str(info.value)
    assert all(name in message for name in NAMES)
    assert f"{tmp_path / 'mnist'} (missing t10k-images-idx3-ubyte)" in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "MNIST_DATA_ROOT" in message


def test_missing_files_with_failing_download(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def no_network(*args, **kwargs):
        calls.append((args, kwargs))
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nno route to host")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", no_network)
    expected = r"Downloading with torchvision failed too \(RuntimeError: no route to host\)"
    with pytest.raises(DataError, match=expected) as info:
        load_dataset("fashion-mnist", tmp_path, download=True)
    assert calls and calls[0][1]["download"] is True
    assert str(tmp_path / "fashion-mnist") in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(DataError, match="'cifar10'.*mnist, fashion-mnist"):
        load_dataset("cifar10", tmp_path)


def test_default_data_root(monkeypatch):
    monkeypatch.delenv(mnist.DATA_ROOT_ENV, raising=False)
    assert mnist.default_data_root() == Path("data")
    monkeypatch.setenv(mnist.DATA_ROOT_ENV, "/somewhere/else")
    assert mnist.default_data_root() == Path("/somewhere/else")


# --- checks on the contents -------------------------------------------------

def test_image_label_count_mismatch(tmp_path):
    make_dataset(tmp_path, gz=False)
    write(tmp_path / NAMES[1], idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match=f"{NAMES[0]} holds 5 images but .*{NAMES[1]} holds 4 labels"):
        load_dataset("mnist", tmp_path, download=False)


def test_images_must_be_28x28(tmp_path):
    make_dataset(tmp_path, gz=False)
    write(tmp_path / NAMES[2], idx_bytes(np.zeros((3, 32, 32), np.uint8)))
    with pytest.raises(DataError, match=f"{NAMES[2]} should hold 28x28 images.*32, 32"):
        load_dataset("mnist", tmp_path, download=False)


def test_labels_out_of_range(tmp_path):
    make_dataset(tmp_path, gz=False)
    write(tmp_path / NAMES[3], idx_bytes(np.array([0, 10, 2], np.uint8)))
    with pytest.raises(DataError, match="has label 10"):
        load_dataset("mnist", tmp_path, download=False)


# --- the Dataset it returns -------------------------------------------------

def test_normalized_with_training_mean_and_std(tmp_path):
    arrays = make_dataset(tmp_path)
    ds = load_dataset("mnist", tmp_path, download=False, dtype=torch.float64)
    train = arrays[NAMES[0]].astype(np.float64) / 255
    test = arrays[NAMES[2]].astype(np.float64) / 255
    assert ds.mean == pytest.approx(train.mean(), rel=1e-12)
    assert ds.std == pytest.approx(train.std(), rel=1e-12)
    expected_test = (test.reshape(3, 784) - train.mean()) / train.std()  # train stats, not test stats
    np.testing.assert_allclose(ds.x_test.numpy(), expected_test, rtol=1e-12, atol=1e-12)
    assert ds.x_train.mean().item() == pytest.approx(0, abs=1e-12)
    assert ds.x_train.std(correction=0).item() == pytest.approx(1, rel=1e-12)


def test_dtypes_labels_and_classes(tmp_path):
    arrays = make_dataset(tmp_path)
    ds = load_dataset("fashion-mnist", tmp_path, download=False)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.y_train.tolist() == arrays[NAMES[1]].tolist()
    assert ds.y_test.tolist() == arrays[NAMES[3]].tolist()
    assert ds.name == "fashion-mnist" and ds.classes[0] == "T-shirt/top" and len(ds.classes) == 10


def test_flattening_is_row_by_row(tmp_path):
    arrays = make_dataset(tmp_path, gz=False)
    images = np.zeros((5, 28, 28), np.uint8)
    images[0, 3, 17] = 255  # row 3, column 17
    write(tmp_path / NAMES[0], idx_bytes(images))
    ds = load_dataset("mnist", tmp_path, download=False, normalize=False)
    assert ds.x_train[0].nonzero().flatten().tolist() == [3 * 28 + 17]
    # And in general: the flattened row equals numpy's C-order reshape.
    expected = arrays[NAMES[2]].reshape(3, 784) / 255
    np.testing.assert_allclose(ds.x_test.numpy(), expected, rtol=1e-6)


def test_to_converts_a_copy(tmp_path):
    make_dataset(tmp_path)
    ds = load_dataset("mnist", tmp_path, download=False)
    ds64 = ds.to(dtype=torch.float64)
    assert ds64.x_train.dtype == torch.float64 and ds64.y_train.dtype == torch.int64
    assert ds.x_train.dtype == torch.float32
    assert torch.allclose(ds64.x_test.float(), ds.x_test)
    assert ds64.mean == ds.mean and ds64.root == ds.root


def test_parsed_files_are_cached(tmp_path, monkeypatch):
    make_dataset(tmp_path)
    calls = []
    real_read_idx = mnist.read_idx
    monkeypatch.setattr(mnist, "read_idx", lambda path: calls.append(path) or real_read_idx(path))
    first = load_dataset("mnist", tmp_path, download=False)
    assert len(calls) == 4
    second = load_dataset("mnist", tmp_path, download=False)
    assert len(calls) == 4  # nothing re-read
    assert torch.equal(first.x_train, second.x_train)
    second.x_train.add_(1)  # editing one result must not leak into the next
    assert torch.equal(load_dataset("mnist", tmp_path, download=False).x_train, first.x_train)


# --- the real datasets ------------------------------------------------------

REAL = requires_data

EXPECTED = {
    "mnist": dict(
        train=[5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        test=[980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        mean=0.1307, std=0.3081, test_mean=0.1325,
    ),
    "fashion-mnist": dict(train=[6000] * 10, test=[1000] * 10, mean=0.2860, std=0.3530, test_mean=0.2868),
}


@REAL
@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_dataset(name):
    try:
        ds = load_dataset(name)  # the root comes from MNIST_DATA_ROOT; downloaded once where there is internet
    except DataError as error:
        pytest.skip(f"no real {name}: {error}")
    want = EXPECTED[name]
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert torch.bincount(ds.y_train, minlength=10).tolist() == want["train"]
    assert torch.bincount(ds.y_test, minlength=10).tolist() == want["test"]
    assert ds.mean == pytest.approx(want["mean"], abs=5e-5)
    assert ds.std == pytest.approx(want["std"], abs=5e-5)
    assert ds.x_train.mean().item() == pytest.approx(0, abs=1e-4)
    assert ds.x_train.std().item() == pytest.approx(1, abs=1e-4)
    # The test set used the training stats, so it is slightly off zero by exactly this much.
    shift = (want["test_mean"] - want["mean"]) / want["std"]
    assert ds.x_test.mean().item() == pytest.approx(shift, abs=5e-4)


def test_a_failed_download_leaves_no_empty_folders(tmp_path, monkeypatch):
    root = tmp_path / "new-root"

    def download_that_fails(folder, train, download):  # as torchvision does: make the folders, then fail
        (Path(folder) / "MNIST" / "raw").mkdir(parents=True)
        raise RuntimeError("no route to host")

    monkeypatch.setattr("torchvision.datasets.MNIST", download_that_fails)
    with pytest.raises(DataError, match="no route to host"):
        load_dataset("mnist", root)
    assert not root.exists()
