"""Your own images: a pure parser of an ``.npz`` of arrays or a ``.zip`` of PNG/JPEG files (one folder per
class), bytes in, images out. It never touches the disk: :mod:`aelab.data` stores uploads and loads files.

Every upload is hostile until checked, and every check comes before the work it bounds
(:mod:`aelab.limits` holds the bounds): the file size before it is read; the number of images, the
decompressed size, the pixels of each image and of all images together from the archive's directory,
the ``.npy`` headers and the image headers, before anything is decompressed or decoded. ``.npy`` arrays
are streamed and resized in chunks, so memory stays at a chunk whatever the file declares; pickles are
never loaded; member names are only ever class labels, never paths. Every rejection raises
:class:`UploadError` (:class:`UploadLimitError` with a code and its numbers for a bound) saying why.
"""
from __future__ import annotations

import io
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from . import limits
from .errors import UploadError, UploadLimitError

MAX_CLASSES = 1000
SIZES = (8, 128)                          # smallest and largest output side
DEFAULT_SIZE = 28
TEST_FRACTION = 0.15
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CLASS_NAME_CHARS = 40
CHUNK_PIXELS = 8 << 20                    # source pixels resized at once (32 MB as float32)
MAX_HEADER_BYTES = 10_000                 # of an .npy header (numpy's own default)


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
        raise UploadError("image size must be between {low} and {high} pixels, got {size}",
                          low=SIZES[0], high=SIZES[1], size=size)
    limits.check("upload_bytes", len(data), UploadLimitError)
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix not in (".npz", ".zip"):
        raise UploadError("unsupported file type {suffix!r}: upload an .npz of arrays or a .zip of PNG/JPEG images in "
                          "one folder per class", suffix=suffix or "(none)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UploadError("the {suffix} file is damaged or not a {suffix} file", suffix=suffix) from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        limits.check("upload_decompressed", sum(m.file_size for m in members), UploadLimitError)
        try:
            return _read_npz(archive, size) if suffix == ".npz" else _read_zip(archive, members, size or DEFAULT_SIZE)
        except (zipfile.BadZipFile, EOFError, OSError) as e:   # a member that is not what its header says
            raise UploadError("the {suffix} file is damaged ({error}: {e})", suffix=suffix, error=type(e).__name__,
                              e=e) from None


# ------------------------------------------------------------------------------------------- .npz
@dataclass
class _Npy:
    """An array member of an .npz, known from its header only."""
    member: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype


def _npy_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> _Npy:
    """Shape and dtype from an .npy header, checked against the member's declared size (no data read)."""
    name = PurePosixPath(member.filename).stem
    with archive.open(member) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format {version[0]}.{version[1]}")
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f, max_header_size=MAX_HEADER_BYTES)
        except ValueError as e:
            raise UploadError("'{name}' in the .npz is not a plain array ({e})", name=name, e=e) from None
        offset = f.tell()
    if dtype.hasobject:
        raise UploadError("the .npz holds pickled Python objects, which are never loaded; save plain "
                          "arrays (class names as a string array, not a list of objects)")
    if fortran:
        raise UploadError("'{name}' is stored in Fortran order; save it with numpy's default (C) order", name=name)
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared != member.file_size - offset:
        raise UploadError("'{name}' declares {declared:,} bytes of data but holds {held:,}; the file is damaged",
                          name=name, declared=declared, held=member.file_size - offset)
    return _Npy(member, tuple(shape), dtype)


def _read_npz(archive: zipfile.ZipFile, size: int | None) -> ImageSet:
    arrays = {PurePosixPath(m.filename).stem: _npy_header(archive, m) for m in archive.infolist()
              if m.filename.endswith(".npy")}
    image_key = next((k for k in ("images", "x", "x_train", "X") if k in arrays), None)
    if image_key is None:
        candidates = [k for k, a in arrays.items() if len(a.shape) in (3, 4)]
        if len(candidates) != 1:
            raise UploadError("no image array: name it 'images' (found {names})",
                              names=", ".join(arrays) or "nothing")
        image_key = candidates[0]
    header = arrays[image_key]
    shape = header.shape[:3] if len(header.shape) == 4 and header.shape[-1] == 1 else header.shape
    if len(shape) != 3:
        raise UploadError("'{image_key}' must be N x H x W or N x H x W x 1 (grayscale), got shape {shape}",
                          image_key=image_key, shape=header.shape)
    n, h, w = shape
    _check_count(n)
    if min(h, w) < 4:
        raise UploadError("images of {h}x{w} pixels are too small (at least 4x4)", h=h, w=w)
    limits.check("image_pixels", h * w, UploadLimitError)
    limits.check("upload_pixels", n * h * w, UploadLimitError)
    if header.dtype != np.uint8 and header.dtype.kind != "f":
        raise UploadError("images must be uint8 or float in [0, 1], got {dtype}", dtype=header.dtype)
    if size is None:   # keep a square size that fits
        size = h if h == w and SIZES[0] <= h <= SIZES[1] else DEFAULT_SIZE
    images = _stream_images(archive, header, (n, h, w), size)

    class_names: tuple[str, ...] = ()
    label_key = next((k for k in ("labels", "y", "y_train") if k in arrays), None)
    labels = None
    if label_key is not None:
        lab = arrays[label_key]
        if lab.shape != (n,) or lab.dtype.kind not in "iu":
            raise UploadError("labels must be {n} integers (one per image), got {dtype} {shape}",
                              n=n, dtype=lab.dtype, shape=lab.shape)
        labels = _load_small(archive, lab).astype(np.int64)
        if labels.min() < 0 or labels.max() >= MAX_CLASSES:
            raise UploadError("labels must be in 0..{last}", last=MAX_CLASSES - 1)
        k = int(labels.max()) + 1
        names = arrays.get("class_names")
        if names is not None:
            if names.dtype.kind != "U" or len(names.shape) != 1 or not k <= names.shape[0] <= MAX_CLASSES \
                    or names.dtype.itemsize > 4 * 1000:
                raise UploadError("class_names must be a string array with {k} to {max_classes} names of at most "
                                  "1,000 characters", k=k, max_classes=MAX_CLASSES)
            class_names = _distinct_names(str(c) for c in _load_small(archive, names))
        else:
            class_names = tuple(str(i) for i in range(k))
    return ImageSet(images, labels, class_names)


def _load_small(archive: zipfile.ZipFile, array: _Npy) -> np.ndarray:
    """A labels or names array, whose header has been checked to be one short row."""
    with archive.open(array.member) as f:
        return np.load(f, allow_pickle=False)


def _stream_images(archive: zipfile.ZipFile, header: _Npy, shape: tuple[int, int, int], size: int) -> np.ndarray:
    """The images (n, size, size) uint8, read and resized ``CHUNK_PIXELS`` source pixels at a time."""
    n, h, w = shape
    out = np.empty((n, size, size), np.uint8)
    per_chunk = max(1, CHUNK_PIXELS // (h * w))
    item = header.dtype.itemsize
    with archive.open(header.member) as f:
        np.lib.format.read_magic(f)
        f.seek(header.member.file_size - n * h * w * item)   # past the header, checked in _npy_header
        for start in range(0, n, per_chunk):
            count = min(per_chunk, n - start)
            raw = f.read(count * h * w * item)
            if len(raw) != count * h * w * item:
                raise UploadError("the image array is truncated; the file is damaged")
            chunk = np.frombuffer(raw, dtype=header.dtype).reshape(count, h, w)
            if chunk.dtype != np.uint8:
                if not np.isfinite(chunk).all() or chunk.min() < 0 or chunk.max() > 1:
                    raise UploadError("float images must hold finite values in [0, 1]")
                chunk = np.rint(chunk * 255).astype(np.uint8)
            out[start:start + count] = chunk if (h, w) == (size, size) else _resize(chunk, size)
    return out


# ------------------------------------------------------------------------------------------- .zip
def _read_zip(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], size: int) -> ImageSet:
    from PIL import Image

    files = []
    for m in members:
        parts = PurePosixPath(m.filename.replace("\\", "/")).parts
        if m.filename.startswith(("/", "\\")) or ".." in parts or ":" in m.filename:
            raise UploadError("'{name}' is an unsafe name (absolute, or with '..'); names in the zip must be "
                              "<class>/<image>.png", name=m.filename[:80])
        if parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue   # macOS metadata, hidden files
        files.append((parts, m))
    if files and all(len(p) == 3 for p, _ in files) and len({p[0] for p, _ in files}) == 1:
        files = [(p[1:], m) for p, m in files]   # one top-level folder around the class folders
    bad = [("/".join(p)) for p, _ in files if len(p) != 2]
    if bad:
        raise UploadError("put every image in one folder per class (<class>/<image>.png); '{name}' is not",
                          name=bad[0][:80])
    others = [p[1] for p, _ in files if PurePosixPath(p[1].lower()).suffix not in IMAGE_SUFFIXES]
    if others:
        raise UploadError("only PNG and JPEG images are accepted; '{name}' is not one", name=others[0][:80])
    _check_count(len(files))
    folders = sorted({p[0] for p, _ in files})
    if len(folders) > MAX_CLASSES:
        raise UploadError("{n} class folders; the limit is {max_classes}",
                          n=len(folders), max_classes=MAX_CLASSES)
    class_names = _distinct_names(folders)
    index = dict(zip(folders, range(len(folders))))

    # headers first: every image's size, and all of them together, before one pixel is decoded
    total = 0
    for parts, m in files:
        width, height = _image_size(archive, m, "/".join(parts)[:80])
        limits.check("image_pixels", width * height, UploadLimitError, f"'{'/'.join(parts)[:80]}' ({width}x{height})")
        total += width * height
        limits.check("upload_pixels", total, UploadLimitError)   # as soon as the sum is past the bound

    images = np.empty((len(files), size, size), np.uint8)
    labels = np.empty(len(files), np.int64)
    for i, (parts, m) in enumerate(files):
        try:
            with Image.open(io.BytesIO(archive.read(m))) as im:
                gray = im.convert("L")
                if gray.size != (size, size):
                    gray = gray.resize((size, size), Image.Resampling.LANCZOS)
                images[i] = np.asarray(gray)
        except Exception as e:   # truncated, not an image, a decompression bomb, ...
            raise UploadError("'{name}' cannot be read as an image ({error})",
                              name="/".join(parts)[:80], error=type(e).__name__) from None
        labels[i] = index[parts[0]]
    return ImageSet(images, labels, class_names)


def _image_size(archive: zipfile.ZipFile, member: zipfile.ZipInfo, label: str) -> tuple[int, int]:
    """(width, height) from the image's header, without decoding it."""
    from PIL import Image

    # a file larger than 4 bytes per allowed pixel holds no image we would accept
    limits.check("image_pixels", member.file_size / 4, UploadLimitError, f"'{label}' ({member.file_size:,} bytes)")
    try:
        with archive.open(member) as f, Image.open(f) as im:   # reads the header, not the pixels
            if im.format not in ("PNG", "JPEG"):
                raise UploadError("'{label}' is a {format} file, not PNG or JPEG", label=label, format=im.format)
            return im.size
    except UploadError:
        raise
    except Exception as e:
        raise UploadError("'{label}' cannot be read as an image ({error})", label=label,
                          error=type(e).__name__) from None


# --------------------------------------------------------------------------------------- helpers
def _check_count(n: int) -> None:
    if n == 0:
        raise UploadError("the file holds no images")
    limits.check("upload_images", n, UploadLimitError)
    if n < 20:
        raise UploadError("only {n} images: at least 20 are needed to train and test", n=n)


def _clean_name(name: str) -> str:
    """A class name for display: visible characters only (NFC), at most ``CLASS_NAME_CHARS``."""
    visible = "".join(ch for ch in unicodedata.normalize("NFC", name)
                      if ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Zl", "Zp"))
    return visible.strip()[:CLASS_NAME_CHARS] or "?"


def _distinct_names(names) -> tuple[str, ...]:
    """Display names of classes, refusing two that would show the same (invisible characters, or a
    difference past the first ``CLASS_NAME_CHARS`` characters): they would be one class to the reader."""
    names = list(names)
    shown: dict[str, str] = {}
    for name in names:
        clean = _clean_name(name)
        if clean in shown:
            raise UploadError("the classes {first!r} and {second!r} look the same ({clean!r}): names must differ in "
                              "visible characters within the first {class_name_chars}",
                              first=shown[clean][:60], second=name[:60], clean=clean,
                              class_name_chars=CLASS_NAME_CHARS)
        shown[clean] = name
    return tuple(_clean_name(n) for n in names)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """(n, H, W) uint8 -> (n, size, size) uint8: area averaging when shrinking, bilinear when growing."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(images.astype(np.float32))[:, None]   # a copy: ``images`` may be a read-only buffer
    out = F.interpolate(t, size=(size, size), mode="area" if images.shape[1] >= size else "bilinear")
    return out[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
