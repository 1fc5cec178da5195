"""Your own images: a pure parser of an ``.npz`` of arrays or a ``.zip`` of PNG/JPEG files (one folder per
class), bytes in, images out. It never touches the disk: :mod:`aelab.data` stores uploads and loads files.

Every upload is treated as hostile: its size is checked before it is read, the number of images
and the decompressed size are capped before anything is decompressed (zip bombs), ``.npz`` files
are read with ``allow_pickle=False``, each image's pixel count is checked from its header before it
is decoded, and member names are only ever used as class labels, never as paths. Every rejection
raises :class:`UploadError` with a message that says what was wrong.
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from .errors import UploadError

MAX_FILE_MB = float(os.environ.get("AELAB_MAX_UPLOAD_MB", "100"))
MAX_IMAGES = 100_000
MAX_DECOMPRESSED_BYTES = 1 << 30          # 1 GiB across all members
MAX_SOURCE_PIXELS = 4096 * 4096           # per image file, read from its header before decoding
MAX_CLASSES = 1000
SIZES = (8, 128)                          # smallest and largest output side
DEFAULT_SIZE = 28
TEST_FRACTION = 0.15
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class ImageSet:
    images: np.ndarray                    # (N, H, W) uint8
    labels: np.ndarray | None             # (N,) int64, or None when unlabelled
    class_names: tuple[str, ...]


def read_images(data: bytes, filename: str, size: int | None = 28) -> ImageSet:
    """Parse an uploaded ``.npz`` or ``.zip`` (``filename`` only tells which); images come out (N, size, size).

    ``size=None``: an .npz of square images between 8 and 128 pixels keeps its size; anything else is
    resized to 28x28."""
    if size is not None and not SIZES[0] <= size <= SIZES[1]:
        raise UploadError(f"image size must be between {SIZES[0]} and {SIZES[1]} pixels, got {size}")
    if len(data) > MAX_FILE_MB * 1e6:
        raise UploadError(f"the file is {len(data) / 1e6:.1f} MB; the limit is {MAX_FILE_MB:g} MB")
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix not in (".npz", ".zip"):
        raise UploadError(f"unsupported file type {suffix or '(none)'!r}: upload an .npz of arrays or a .zip of "
                          f"PNG/JPEG images in one folder per class")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UploadError(f"the {suffix} file is damaged or not a {suffix} file") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        declared = sum(m.file_size for m in members)
        if declared > MAX_DECOMPRESSED_BYTES:
            raise UploadError(f"the archive would decompress to {declared / 1e9:.1f} GB; the limit is "
                              f"{MAX_DECOMPRESSED_BYTES / 1e9:.1f} GB")
        return _read_npz(data, size) if suffix == ".npz" else _read_zip(archive, members, size or DEFAULT_SIZE)


# ------------------------------------------------------------------------------------------- .npz
def _read_npz(data: bytes, size: int | None) -> ImageSet:
    try:
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        keys = list(arrays.keys())
        image_key = next((k for k in ("images", "x", "x_train", "X") if k in keys), None)
        if image_key is None:
            candidates = [k for k in keys if arrays[k].ndim in (3, 4)]
            if len(candidates) != 1:
                raise UploadError(f"no image array: name it 'images' (found {', '.join(keys) or 'nothing'})")
            image_key = candidates[0]
        images = arrays[image_key]
        label_key = next((k for k in ("labels", "y", "y_train") if k in keys), None)
        labels = arrays[label_key] if label_key else None
        names = arrays["class_names"] if "class_names" in keys else None
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise UploadError("the .npz holds pickled Python objects, which are never loaded; save plain "
                              "arrays (class names as a string array, not a list of objects)") from None
        raise UploadError(f"the .npz cannot be read ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise UploadError(f"the .npz is damaged ({e})") from None

    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise UploadError(f"'{image_key}' must be N x H x W or N x H x W x 1 (grayscale), got shape "
                          f"{tuple(images.shape)}")
    n = len(images)
    _check_count(n)
    if min(images.shape[1:]) < 4 or max(images.shape[1:]) > 4096:
        raise UploadError(f"images of {images.shape[1]}x{images.shape[2]} pixels are not supported")
    if images.dtype == np.uint8:
        pass
    elif images.dtype.kind == "f":
        if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise UploadError("float images must hold finite values in [0, 1]")
        images = np.rint(images * 255).astype(np.uint8)
    else:
        raise UploadError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
    if size is None:   # keep a square size that fits
        h, w = images.shape[1:]
        size = h if h == w and SIZES[0] <= h <= SIZES[1] else DEFAULT_SIZE
    if images.shape[1:] != (size, size):
        images = _resize_all(images, size)

    class_names: tuple[str, ...] = ()
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,) or labels.dtype.kind not in "iu":
            raise UploadError(f"labels must be {n} integers (one per image), got {labels.dtype} {labels.shape}")
        if labels.min() < 0 or labels.max() >= MAX_CLASSES:
            raise UploadError(f"labels must be in 0..{MAX_CLASSES - 1}")
        labels = labels.astype(np.int64)
        k = int(labels.max()) + 1
        if names is not None:
            if names.dtype.kind != "U" or names.ndim != 1 or len(names) < k:
                raise UploadError(f"class_names must be a string array with at least {k} names")
            class_names = tuple(_clean_name(str(c)) for c in names)
        else:
            class_names = tuple(str(i) for i in range(k))
    return ImageSet(images, labels, class_names)


# ------------------------------------------------------------------------------------------- .zip
def _read_zip(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], size: int) -> ImageSet:
    from PIL import Image

    files = []
    for m in members:
        parts = PurePosixPath(m.filename.replace("\\", "/")).parts
        if m.filename.startswith(("/", "\\")) or ".." in parts or ":" in m.filename:
            raise UploadError(f"'{m.filename[:80]}' is an unsafe name (absolute, or with '..'); "
                              f"names in the zip must be <class>/<image>.png")
        if parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue   # macOS metadata, hidden files
        files.append((parts, m))
    if files and all(len(p) == 3 for p, _ in files) and len({p[0] for p, _ in files}) == 1:
        files = [(p[1:], m) for p, m in files]   # one top-level folder around the class folders
    bad = [("/".join(p)) for p, _ in files if len(p) != 2]
    if bad:
        raise UploadError(f"put every image in one folder per class (<class>/<image>.png); "
                          f"'{bad[0][:80]}' is not")
    others = [p[1] for p, _ in files if PurePosixPath(p[1].lower()).suffix not in IMAGE_SUFFIXES]
    if others:
        raise UploadError(f"only PNG and JPEG images are accepted; '{others[0][:80]}' is not one")
    _check_count(len(files))
    class_names = tuple(sorted({_clean_name(p[0]) for p, _ in files}))
    if len(class_names) > MAX_CLASSES:
        raise UploadError(f"{len(class_names)} class folders; the limit is {MAX_CLASSES}")
    index = {c: i for i, c in enumerate(class_names)}
    images = np.empty((len(files), size, size), np.uint8)
    labels = np.empty(len(files), np.int64)
    for i, (parts, m) in enumerate(files):
        label = f"'{'/'.join(parts)[:80]}'"
        try:
            with Image.open(io.BytesIO(archive.read(m))) as im:
                if im.width * im.height > MAX_SOURCE_PIXELS:
                    raise UploadError(f"{label} is {im.width}x{im.height} pixels; the limit is "
                                      f"{MAX_SOURCE_PIXELS:,} pixels per image")
                if im.format not in ("PNG", "JPEG"):
                    raise UploadError(f"{label} is a {im.format} file, not PNG or JPEG")
                gray = im.convert("L")
                if gray.size != (size, size):
                    gray = gray.resize((size, size), Image.Resampling.LANCZOS)
                images[i] = np.asarray(gray)
        except UploadError:
            raise
        except Exception as e:   # truncated, not an image, a decompression bomb, ...
            raise UploadError(f"{label} cannot be read as an image ({type(e).__name__})") from None
        labels[i] = index[_clean_name(parts[0])]
    return ImageSet(images, labels, class_names)


# --------------------------------------------------------------------------------------- helpers
def _check_count(n: int) -> None:
    if n == 0:
        raise UploadError("the file holds no images")
    if n > MAX_IMAGES:
        raise UploadError(f"{n:,} images; the limit is {MAX_IMAGES:,}")
    if n < 20:
        raise UploadError(f"only {n} images: at least 20 are needed to train and test")


def _clean_name(name: str) -> str:
    """A class name for display: printable, at most 40 characters."""
    cleaned = "".join(ch for ch in name if ch.isprintable()).strip()[:40]
    return cleaned or "?"


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(images).float()[:, None]
    out = F.interpolate(t, size=(size, size), mode="area" if images.shape[1] >= size else "bilinear")
    return out[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
