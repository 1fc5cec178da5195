import gzip
import os
import time

import numpy as np
import pytest
import torch

from aelab import data
from aelab.config import DataConfig
from aelab.data import DataError, load_dataset, load_idx_dir, read_idx
from conftest import DEBIAN_FASHION, write_idx


def test_reads_idx_directory(idx_dir):
    ds = load_idx_dir(idx_dir, "fashion-mnist")
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape == (60, 1, 28, 28)
    assert ds.y_test.tolist() == [i % 10 for i in range(20)]
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.source == str(idx_dir)


def test_reads_plain_idx(tmp_path):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    read = read_idx(write_idx(tmp_path / "x-idx3-ubyte", arr, gz=False), "images")
    assert (read == arr).all()


def test_wrong_magic_names_the_file(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.zeros(5))
    with pytest.raises(DataError, match=r"labels\.gz.*not an IDX images file"):
        read_idx(path, "images")


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((10, 28, 28)))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.*truncated"):
        read_idx(path, "images")


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        read_idx(path, "images")


def test_count_mismatch(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", np.zeros(19))
    with pytest.raises(DataError, match="20 images but .* 19 labels"):
        load_idx_dir(idx_dir, "fashion-mnist")


def test_lookup_order_prefers_the_given_directory(idx_dir, monkeypatch):
    data.load_dataset.cache_clear()
    ds = load_dataset(DataConfig("fashion-mnist", data_dir=str(idx_dir)), download=False)
    assert ds.source == str(idx_dir) and len(ds.x_train) == 60
    monkeypatch.setenv("AELAB_DATA_DIR", str(idx_dir))
    assert data.candidate_dirs("fashion-mnist")[0] == idx_dir


def test_torchvision_cache_layout(idx_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in idx_dir.iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    ds = load_dataset(DataConfig("mnist", data_dir=str(root)), download=False)
    assert ds.source == str(raw) and ds.class_names[3] == "3"


def test_missing_data_set_explains_every_way_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIRS", {})
    with pytest.raises(DataError) as e:
        load_dataset(DataConfig("fashion-mnist", data_dir=str(tmp_path / "empty")), download=False)
    msg = str(e.value)
    assert "AELAB_DATA_DIR" in msg and "digits" in msg and "download" in msg and str(tmp_path / "empty") in msg


def test_unknown_data_set():
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("cifar-100")


def test_validation_split_is_the_unshuffled_tail(digits):
    split = digits.split(0.1)
    n = len(digits.x_train)
    assert len(split.x_val) == round(n * 0.1)
    assert torch.equal(split.x_val, digits.x_train[n - len(split.x_val):])
    assert torch.equal(split.x_train, digits.x_train[:n - len(split.x_val)])


def test_digits_are_embedded(digits):
    assert digits.image_shape == (1, 8, 8) and digits.x_train.dtype == torch.uint8
    assert len(digits.x_train) == 1500 and len(digits.x_test) == 297
    assert digits.x_train.max() == 255


def test_default_data_set_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "DEBIAN_DIRS", {})
    monkeypatch.setattr(data, "default_data_dir", lambda: tmp_path)
    name, why = data.default_dataset()
    assert name == "digits" and "not found" in why


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist():
    ds = load_dataset("fashion-mnist", download=False)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10
    assert data.default_dataset()[0] == "fashion-mnist"


def test_decoded_idx_sets_are_kept_mapped_checked_and_bounded(idx_dir, tmp_path_factory, monkeypatch):
    from aelab import data

    monkeypatch.setenv("AELAB_DATA_DIR", str(tmp_path_factory.mktemp("cache")))
    first = load_idx_dir(idx_dir, "fashion-mnist", cache=True)
    (decoded,) = (data.default_data_dir() / "decoded").iterdir()
    assert sorted(p.name for p in decoded.iterdir()) == ["test-images.npy", "test-labels.npy", "train-images.npy",
                                                         "train-labels.npy"]
    decoding = []
    monkeypatch.setattr(data, "read_idx", lambda *a: decoding.append(a) or read_idx(*a))
    again = load_idx_dir(idx_dir, "fashion-mnist", cache=True)
    assert not decoding and isinstance(np.load(decoded / "train-images.npy", mmap_mode="c"), np.memmap)
    for a, b in [(first.x_train, again.x_train), (first.y_train, again.y_train), (first.x_test, again.x_test)]:
        assert a.dtype == b.dtype and torch.equal(a, b)
    again.x_test[0] = 0   # copy-on-write: the file keeps its pixels
    assert torch.equal(load_idx_dir(idx_dir, "fashion-mnist", cache=True).x_test, first.x_test) and not decoding

    # damaged (by a replaced file: truncating a mapped file in place would kill the processes that map it, and
    # AE Lab never rewrites one in place)
    (decoded / "new.npy").write_bytes((decoded / "train-images.npy").read_bytes()[:5000])
    (decoded / "new.npy").replace(decoded / "train-images.npy")
    assert torch.equal(load_idx_dir(idx_dir, "fashion-mnist", cache=True).x_train, first.x_train)
    assert len(decoding) == 4 and data._read_decoded(decoded) is not None   # decoded again, and rewritten
    np.save(decoded / "new.npy", np.load(decoded / "test-labels.npy") + 10)   # well formed, labels out of range
    (decoded / "new.npy").replace(decoded / "test-labels.npy")
    assert torch.equal(load_idx_dir(idx_dir, "fashion-mnist", cache=True).y_test, first.y_test) and len(decoding) == 8

    for i in range(data.DECODED_KEPT + 2):   # each change of the files is a new set; the oldest go
        os.utime(idx_dir / "t10k-labels-idx1-ubyte.gz", ns=(i * 10**9, i * 10**9))
        load_idx_dir(idx_dir, "fashion-mnist", cache=True)
    assert len(list((data.default_data_dir() / "decoded").iterdir())) == data.DECODED_KEPT

    # what a process that died while writing left goes after an hour, not while another process may be writing it
    decoded_root = data.default_data_dir() / "decoded"
    stale, fresh = decoded_root / ".writing-stale", decoded_root / ".writing-fresh"
    for d in (stale, fresh):
        d.mkdir()
        (d / "train-images.npy").write_bytes(b"half")
    for p in (stale / "train-images.npy", stale):
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    os.utime(idx_dir / "t10k-labels-idx1-ubyte.gz", ns=(99 * 10**9, 99 * 10**9))
    load_idx_dir(idx_dir, "fashion-mnist", cache=True)
    assert not stale.exists() and fresh.exists()
    assert len([d for d in decoded_root.iterdir() if not d.name.startswith(".")]) == data.DECODED_KEPT
