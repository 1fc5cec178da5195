"""Your own images: valid .npz and .zip uploads, and every hostile case rejected with its message."""
import io
import json

import numpy as np
import pytest

import aelab
from aelab.uploads import UploadError, read_images
from conftest import png_bytes, run_cli, zip_bytes


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


@pytest.fixture
def digit_images(digits):
    return digits.x_train[:60, 0].numpy(), digits.y_train[:60].numpy()


# ------------------------------------------------------------------------------------------- valid
def test_npz_with_labels_and_class_names(digit_images):
    x, y = digit_images
    names = np.array([f"digit {i}" for i in range(10)])
    got = read_images(npz_bytes(images=x, labels=y, class_names=names), "mine.npz", size=8)
    assert got.images.shape == (60, 8, 8) and got.images.dtype == np.uint8 and np.array_equal(got.images, x)
    assert np.array_equal(got.labels, y) and got.class_names[3] == "digit 3"

    ds = aelab.Dataset.from_images(got, "mine", "test")
    assert len(ds.x_train) == 51 and len(ds.x_test) == 9 and ds.image_shape == (1, 8, 8)
    assert sorted(np.concatenate([ds.y_train.numpy(), ds.y_test.numpy()])) == sorted(y)   # shuffled, none lost


def test_npz_of_unlabelled_floats_with_a_channel_axis_is_resized(digit_images):
    x, _ = digit_images
    got = read_images(npz_bytes(x=(x / 255.0)[..., None].astype(np.float32)), "floats.npz", size=16)
    assert got.images.shape == (60, 16, 16) and got.labels is None
    ds = aelab.Dataset.from_images(got, "floats", "test")
    assert ds.class_names == ("all",) and set(ds.y_train.tolist()) == {0}
    # size=None (a stored upload, or --data file.npz): square images keep their size, others become 28x28
    assert read_images(npz_bytes(x=x), "x.npz", size=None).images.shape == (60, 8, 8)
    assert read_images(npz_bytes(x=x[:, :, :6]), "x.npz", size=None).images.shape == (60, 28, 28)


def test_zip_of_class_folders_in_a_top_folder(digit_images):
    x, y = digit_images
    files = {f"shapes/{'even' if label % 2 == 0 else 'odd'}/{i}.{'png' if i % 2 else 'jpg'}":
             png_bytes(np.kron(img, np.ones((4, 4), np.uint8)), "RGB", "PNG" if i % 2 else "JPEG")   # 32x32 RGB
             for i, (img, label) in enumerate(zip(x, y))}
    files["shapes/.DS_Store"] = b"junk"
    files["__MACOSX/shapes/._0.jpg"] = b"junk"
    got = read_images(zip_bytes(files), "shapes.zip", size=16)
    assert got.images.shape == (60, 16, 16) and got.class_names == ("even", "odd")
    assert np.array_equal(got.labels, (y % 2).astype(np.int64))


def test_cli_trains_on_a_file_path(digit_images, tmp_path):
    x, y = digit_images
    path = tmp_path / "mine.npz"
    path.write_bytes(npz_bytes(images=np.concatenate([x] * 3), labels=np.concatenate([y] * 3)))
    p = run_cli("train", "--preset", "stacked", "--data", str(path),
                        "--epochs", "1", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    run = aelab.RunStore(tmp_path / "runs").open(summary["run"])
    assert run.config.data.name == str(path) and run.image_shape == (1, 8, 8) and run.metrics["test"]["bce"] > 0

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    p = run_cli("train", "--data", str(bad), "--epochs", "1",
                        "--runs-dir", str(tmp_path / "runs"))
    assert p.returncode == 1 and "damaged" in p.stderr


def test_stored_uploads_are_named_by_us(digit_images, tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_DATA_DIR", str(tmp_path))
    x, y = digit_images
    got = read_images(npz_bytes(images=x, labels=y), "x.npz", size=8)
    path = aelab.data.store_upload(got, "../../../etc/evil name;rm.npz", owner="local")
    assert path.parent == tmp_path / "uploads" / "local" and path.name == "evil-name-rm.npz"
    assert aelab.data.store_upload(got, "evil name;rm.npz", owner="local") == path   # the same images again
    other = read_images(npz_bytes(images=x[::-1], labels=y[::-1]), "x.npz", size=8)
    assert aelab.data.store_upload(other, "evil name;rm.npz", owner="local").name == "evil-name-rm-2.npz"
    ds = aelab.load_dataset(str(path))
    assert ds.image_shape == (1, 8, 8) and len(ds.x_train) + len(ds.x_test) == 60


# ----------------------------------------------------------------------------------------- hostile
def test_hostile_uploads_are_rejected_with_a_reason(digit_images, monkeypatch, tmp_path):
    x, y = digit_images
    png = png_bytes(x[0])
    cases = {
        "wrong type": (b"hello", "notes.txt", "unsupported file type '.txt'"),
        "not a zip": (b"PK\x03\x04garbage", "x.zip", "damaged"),
        "pickle": (npz_bytes(images=x, class_names=np.array([object(), "b"], dtype=object)), "p.npz", "pickled"),
        "rgb": (npz_bytes(images=np.zeros((30, 8, 8, 3), np.uint8)), "rgb.npz", "grayscale"),
        "range": (npz_bytes(images=np.full((30, 8, 8), 2.0)), "f.npz", "finite values in [0, 1]"),
        "nan": (npz_bytes(images=np.full((30, 8, 8), np.nan)), "f.npz", "finite values in [0, 1]"),
        "int32": (npz_bytes(images=np.zeros((30, 8, 8), np.int32)), "i.npz", "uint8 or float"),
        "labels": (npz_bytes(images=x, labels=y[:10]), "l.npz", "labels must be 60 integers"),
        "few": (npz_bytes(images=x[:5]), "few.npz", "at least 20"),
        "no images": (npz_bytes(foo=np.zeros(3)), "n.npz", "no image array"),
        "traversal": (zip_bytes({"../../evil/0.png": png, "a/1.png": png}), "t.zip", "unsafe name"),
        "windows": (zip_bytes({"a\\..\\..\\0.png": png}), "t.zip", "unsafe name"),
        "drive": (zip_bytes({"C:/a/0.png": png}), "t.zip", "unsafe name"),
        "flat": (zip_bytes({"0.png": png}), "t.zip", "one folder per class"),
        "not an image": (zip_bytes({"a/readme.txt": b"hi"}), "t.zip", "only PNG and JPEG"),
        "corrupt": (zip_bytes({f"a/{i}.png": png[:40] for i in range(25)}), "t.zip", "cannot be read as an image"),
        "gif": (zip_bytes({f"a/{i}.png": png_bytes(x[0], "L", "GIF") for i in range(25)}), "t.zip",
                "not PNG or JPEG"),
    }
    for name, (data, filename, message) in cases.items():
        with pytest.raises(UploadError, match=message.replace("[", r"\[").replace("]", r"\]")):
            read_images(data, filename)
        assert not any(tmp_path.iterdir()), name   # nothing was written anywhere we look

    monkeypatch.setenv("AELAB_MAX_UPLOAD_MB", "0.001")
    with pytest.raises(UploadError, match=r"the limit is 0.001 MB \(AELAB_MAX_UPLOAD_MB\)"):
        read_images(npz_bytes(images=x), "big.npz")
    monkeypatch.delenv("AELAB_MAX_UPLOAD_MB")

    # a zip bomb: 3 MB of zeros that compress to a few KB; refused from the sizes its directory declares
    monkeypatch.setenv("AELAB_MAX_UNZIPPED_MB", "2")
    bomb = zip_bytes({"a/0.png": bytes(3_000_000)})
    assert len(bomb) < 10_000
    with pytest.raises(UploadError, match="the decompressed size is 3 MB; the limit is 2 MB"):
        read_images(bomb, "bomb.zip")

    monkeypatch.setenv("AELAB_MAX_UPLOAD_IMAGES", "30")
    with pytest.raises(UploadError, match="is 60 images; the limit is 30 images"):
        read_images(npz_bytes(images=x), "many.npz")
    with pytest.raises(UploadError, match="the limit is 30"):
        read_images(zip_bytes({f"a/{i}.png": png for i in range(40)}), "many.zip")

    monkeypatch.setenv("AELAB_MAX_IMAGE_MPIXELS", str(32 * 32 / 1e6))
    big = png_bytes(np.zeros((64, 64), np.uint8))
    with pytest.raises(UploadError, match="64x64"):
        read_images(zip_bytes({f"a/{i}.png": big for i in range(25)}), "huge.zip")

    with pytest.raises(UploadError, match="between 8 and 128"):
        read_images(npz_bytes(images=x), "x.npz", size=4)
