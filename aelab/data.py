"""Data sets: Fashion-MNIST and MNIST from IDX files, scikit-learn's embedded 8x8 digits, your own images.

One entry point, :func:`load_dataset`, takes the data config (name, directory, image size). Images are
kept as uint8 tensors of shape (N, 1, H, W) and converted to floats per batch.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from . import limits
from .config import DataConfig
from .errors import DataError, UploadLimitError
from .files import keep_newest, read_regular_file, remove_idle, tree_bytes
from .i18n import N_
from .uploads import TEST_FRACTION, ImageSet, read_images

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(i) for i in range(10))
IDX_FILES = {  # split -> (images, labels), as published
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEBIAN_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
TORCHVISION_NAMES = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}
DATASETS = ("fashion-mnist", "mnist", "digits")
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801


@dataclass
class Dataset:
    """A data set in memory: uint8 images (N, 1, H, W), int64 labels, and where it came from."""
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]
    source: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @classmethod
    def from_arrays(cls, name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                    class_names, source: str) -> "Dataset":
        """From (images (N, H, W) uint8, labels (N,)) pairs for the training and the test set."""
        def images(a):  # (N, H, W) uint8 -> (N, 1, H, W)
            return torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(1)

        def labels(a):
            return torch.from_numpy(a.astype(np.int64))

        return cls(name, images(train[0]), labels(train[1]), images(test[0]), labels(test[1]), tuple(class_names),
                   source)

    @classmethod
    def from_images(cls, images: ImageSet, name: str, source: str, seed: int = 0) -> "Dataset":
        """Your images, shuffled once (seeded: class folders arrive sorted, and the validation split takes the
        last images), with ``TEST_FRACTION`` held out as the test set. Unlabelled images get one class, 'all'.

        The arrays of ``images`` are shuffled in place and shared, not copied: a large set is held once."""
        n = len(images.images)
        x = images.images
        y = images.labels if images.labels is not None else np.zeros(n, np.int64)
        state = np.random.default_rng(seed).bit_generator.state
        for array in (x, y):   # the same permutation for both: the same generator state, the same swaps
            rng = np.random.default_rng()
            rng.bit_generator.state = state
            rng.shuffle(array)
        classes = images.class_names if images.labels is not None else ("all",)
        n_test = max(1, int(round(n * TEST_FRACTION)))
        return cls.from_arrays(name, (x[:-n_test], y[:-n_test]), (x[-n_test:], y[-n_test:]), classes, source)

    def split(self, validation_split: float) -> "Split":
        """Hold out the *last* fraction of the training set, unshuffled, like Keras's validation_split."""
        n_val = int(round(len(self.x_train) * validation_split))
        if not 0 < n_val < len(self.x_train):
            raise DataError("validation_split {validation_split} leaves no training or no validation images out of "
                            "{n}", validation_split=validation_split, n=len(self.x_train))
        cut = len(self.x_train) - n_val
        return Split(self.x_train[:cut], self.y_train[:cut], self.x_train[cut:], self.y_train[cut:])


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    def to(self, device) -> "Split":
        return Split(*(t.to(device) for t in (self.x_train, self.y_train, self.x_val, self.y_val)))

    def val_sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of ``n`` validation images spread evenly over the validation set (fixed, no RNG)."""
        idx = torch.linspace(0, len(self.x_val) - 1, min(n, len(self.x_val))).long().to(self.x_val.device)
        return self.x_val[idx], self.y_val[idx]


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]; float data (the book's 3-D toy set) passes as it is."""
    return x if x.is_floating_point() else x.float().div_(255.0)


def pixels(x_uint8: torch.Tensor) -> np.ndarray:
    """uint8 images (N, 1, H, W) -> (N, H, W) float32 in [0, 1] on the CPU, for display."""
    return to_float(x_uint8[:, 0].cpu()).numpy()


def class_counts(y: torch.Tensor, idx, class_names) -> dict[str, int]:
    """{class name: how many of the images ``idx`` (labels ``y``) it has}, most first; absent classes left out."""
    counts = np.bincount(y[torch.as_tensor(idx, dtype=torch.long)].numpy(), minlength=len(class_names))
    return {class_names[c]: int(counts[c]) for c in np.argsort(-counts, kind="stable") if counts[c]}


def default_data_dir() -> Path:
    return Path(os.environ.get("AELAB_DATA_DIR") or Path.home() / ".cache" / "aelab")


# ---------------------------------------------------------------------------------------- IDX files

def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of ``kind`` 'images' (N, H, W) or 'labels' (N,), checked."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError("{path}: cannot read ({e}); the file is damaged, delete it and fetch it again", path=path,
                        e=e) from None
    magic, dims = (_IMAGES_MAGIC, 3) if kind == "images" else (_LABELS_MAGIC, 1)
    header = 4 + 4 * dims
    found = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None
    if found != magic:
        shown = "none" if found is None else f"{found:#010x}"
        raise DataError("{path}: not an IDX {kind} file (magic {shown}, expected {magic:#010x})",
                        path=path, kind=kind, shown=shown, magic=magic)
    if len(raw) < header:
        raise DataError("{path}: too short for an IDX header ({size} bytes); the file is truncated",
                        path=path, size=len(raw))
    shape = struct.unpack(f">{dims}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError("{path}: holds {size} bytes of data, its header promises {expected} for shape {shape}; the "
                        "file is truncated or damaged",
                        path=path, size=len(raw) - header, expected=expected, shape=shape)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_idx_dir(directory: str | Path, name: str, cache: bool = False) -> Dataset:
    """Load the four published IDX files from ``directory``, checking counts and shapes agree.

    ``cache``: keep the decoded arrays, uncompressed, under ``<data dir>/decoded/`` and map them from there
    on later loads (by any process), as long as the IDX files keep their size and time. No decoding (0.3 s
    for Fashion-MNIST), and the images are file pages that the server and its workers share and the kernel
    can drop, not 55 MB of each process's heap."""
    directory = Path(directory)
    files = {}
    for split, stems in IDX_FILES.items():
        files[split] = [_find_idx(directory, s) for s in stems]
        if None in files[split]:
            missing = [s for s, f in zip(stems, files[split]) if f is None]
            raise DataError("{directory}: missing {files} (.gz or plain)",
                            directory=directory, files=", ".join(missing))
    decoded = _decoded_dir(name, [f for pair in files.values() for f in pair]) if cache else None
    arrays = _read_decoded(decoded) if decoded else None
    if arrays is None:
        arrays = {}
        for split, (images_file, labels_file) in files.items():
            images, labels = read_idx(images_file, "images"), read_idx(labels_file, "labels")
            if len(images) != len(labels):
                raise DataError("{images_file} has {n_images} images but {labels_file} has {n_labels} labels",
                                images_file=images_file, n_images=len(images), labels_file=labels_file,
                                n_labels=len(labels))
            if labels.size and labels.max() >= 10:
                raise DataError("{file}: label {label} out of range 0..9", file=labels_file, label=labels.max())
            arrays[split] = (images, labels)
        if arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
            raise DataError("{directory}: train and test images differ in size", directory=directory)
        if decoded:
            arrays = _write_decoded(decoded, arrays) or arrays
    classes = FASHION_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES
    return Dataset.from_arrays(name, arrays["train"], arrays["test"], classes, source=str(directory))


DECODED_KEPT = 4   # decoded IDX data sets kept on disk (55 MB for Fashion-MNIST), the most recently written


def _decoded_dir(name: str, files: list[Path]) -> Path:
    """Where the decoded arrays of these IDX ``files`` live: named by their paths, sizes and times."""
    stats = [(str(f.resolve()), st.st_size, st.st_mtime_ns) for f in files for st in [f.stat()]]
    return default_data_dir() / "decoded" / f"{name}-{hashlib.sha256(repr(stats).encode()).hexdigest()[:16]}"


def _read_decoded(where: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """The arrays written by :func:`_write_decoded`, mapped copy-on-write (writes stay private to the process);
    None when they are missing or do not look as written (then the IDX files are decoded again)."""
    try:
        arrays = {split: tuple(np.load(where / f"{split}-{part}.npy", mmap_mode="c", allow_pickle=False)
                               for part in ("images", "labels")) for split in IDX_FILES}
    except (OSError, ValueError, EOFError):
        return None
    for images, labels in arrays.values():
        if not (images.dtype == labels.dtype == np.uint8 and images.ndim == 3 and labels.ndim == 1
                and len(images) == len(labels) and (not labels.size or labels.max() < 10)):
            return None
    return arrays if arrays["train"][0].shape[1:] == arrays["test"][0].shape[1:] else None


def _write_decoded(where: Path, arrays: dict) -> dict | None:
    """Write the checked ``arrays`` to ``where`` (all at once: a rename; a process that got there first wins)
    and map them back; None if the disk would not take them. Older decoded sets beyond ``DECODED_KEPT`` go."""
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=where.parent, prefix=".writing-"))
    except OSError:
        return None
    try:
        for split, (images, labels) in arrays.items():
            np.save(tmp / f"{split}-images.npy", images)
            np.save(tmp / f"{split}-labels.npy", labels)
        shutil.rmtree(where, ignore_errors=True)   # a damaged one (we are here because it could not be read)
        tmp.rename(where)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    _forget_old_decoded(where.parent)
    return _read_decoded(where)


def _forget_old_decoded(decoded: Path) -> None:
    """Remove the decoded sets beyond the ``DECODED_KEPT`` newest, and what a process that died while writing left
    (a ``.writing-`` folder untouched for an hour)."""
    keep_newest(decoded, DECODED_KEPT, "[!.]*")
    remove_idle(decoded, 3600, prefix=".")


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Where the IDX files of ``name`` are looked for, in order."""
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    env = os.environ.get("AELAB_DATA_DIR")
    if env:
        dirs.append(Path(env))
    if name in DEBIAN_DIRS:
        dirs.append(Path(DEBIAN_DIRS[name]))
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    dirs += [root / name, root / TORCHVISION_NAMES[name] / "raw"]  # our layout, torchvision's cache layout
    return list(dict.fromkeys(dirs))


def _load_idx_dataset(name: str, data_dir, download: bool) -> Dataset:
    tried = []
    for directory in candidate_dirs(name, data_dir):
        if _find_idx(directory, IDX_FILES["train"][0]) is None:
            tried.append(str(directory))
            continue
        return load_idx_dir(directory, name, cache=True)  # present but damaged: its own clear error
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if download:
        try:
            import torchvision.datasets as tvd

            getattr(tvd, TORCHVISION_NAMES[name])(root=str(root), train=True, download=True)
            getattr(tvd, TORCHVISION_NAMES[name])(root=str(root), train=False, download=True)
            return load_idx_dir(root / TORCHVISION_NAMES[name] / "raw", name, cache=True)
        except Exception as e:  # no network, blocked host, ...
            tried.append(f"torchvision download into {root} ({type(e).__name__}: {e})")
    debian = " `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or" if name in DEBIAN_DIRS else ""
    raise DataError(
        "{name} not found. Looked in: {places}. To get it:{debian} put the four IDX files "
        "(train-images-idx3-ubyte.gz, ...) in a directory and pass it as data_dir / --data-dir or set "
        "AELAB_DATA_DIR, or allow a download (torchvision, needs internet). The embedded 'digits' data set always "
        "works offline.", name=name, places="; ".join(tried), debian=debian)


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    labels = d.target
    n_test = 297  # the last ~1/6 (1500 train / 297 test), fixed so numbers compare across runs
    return Dataset.from_arrays("digits", (images[:-n_test], labels[:-n_test]), (images[-n_test:], labels[-n_test:]),
                               DIGIT_CLASSES, source="scikit-learn load_digits (embedded, 8x8, 1797 images)")


def is_file_name(name: str) -> bool:
    """True when a data set name is a path to your own .npz or .zip of images."""
    return name.lower().endswith((".npz", ".zip"))


def load_dataset(source: DataConfig | str, download: bool = True) -> Dataset:
    """The data set of a data config (its name, directory and image size); a bare name stands for
    ``DataConfig(name)``. Names: 'fashion-mnist', 'mnist', 'digits', or the path of an .npz / .zip of your
    images (see :mod:`aelab.uploads`). Cached per process.

    IDX data sets are looked up in ``data_dir``, ``$AELAB_DATA_DIR``, the Debian package's directory, our
    cache and torchvision's cache layout, then downloaded with torchvision when ``download`` and the
    network allow. Images from a .zip are resized to ``image_size``. Raises :class:`DataError` saying
    how to get it.
    """
    cfg = DataConfig(name=source) if isinstance(source, str) else source
    return _load(cfg.name, cfg.data_dir, cfg.image_size, download)


load_dataset.cache_clear = lambda: _load.cache_clear()   # forget every loaded data set (tests, changed files)


@functools.lru_cache(maxsize=4)
def _load(name: str, data_dir: str | None, image_size: int, download: bool) -> Dataset:
    if name == "digits":
        return _load_digits()
    if name in TORCHVISION_NAMES:
        return _load_idx_dataset(name, data_dir, download)
    if is_file_name(name):
        return load_file(name, image_size)
    raise DataError("unknown data set {name!r}; choose one of {names}, or give the path of an .npz or .zip of your "
                    "images", name=name, names=", ".join(DATASETS))


# ----------------------------------------------------------------------------------- your images
def load_file(path: str | Path, size: int = 28) -> Dataset:
    """A data set from an ``.npz`` or ``.zip`` on disk (the CLI's ``--data path``), with the upload checks.
    A .zip's images are resized to ``size``; an .npz keeps its square size between 8 and 128."""
    path = Path(path)
    images = read_images(read_regular_file(path), path.name, size if path.suffix.lower() == ".zip" else None)
    return Dataset.from_images(images, str(path), source=f"your file {path.name}")


def uploads_dir(owner: str = "") -> Path:
    """Where uploaded data sets are stored: <data dir>/uploads[/<owner>]."""
    root = default_data_dir() / "uploads"
    return root / owner if owner else root


def store_upload(images: ImageSet, filename: str, owner: str = "") -> Path:
    """Store parsed ``images`` as a plain ``.npz`` under :func:`uploads_dir`, named from a slug of
    ``filename``'s stem, made unique among the owner's data sets: the uploaded name never becomes a path.
    The owner's stored data sets together stay within ``AELAB_MAX_VISITOR_UPLOADS_MB``."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", PurePosixPath(filename).stem).strip("-")[:40] or "images"
    directory = uploads_dir(owner)
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(np.ascontiguousarray(images.images)).hexdigest()   # hashes the buffer, no copy
    arrays = {"images": images.images, "class_names": np.array(images.class_names or ("all",), dtype=str),
              "sha256": np.array(digest)}
    if images.labels is not None:
        arrays["labels"] = images.labels
    for path in [directory / f"{slug}.npz", *(directory / f"{slug}-{i}.npz" for i in range(2, 1000))]:
        if not path.exists():
            break
        if _stored_digest(path) == digest:   # the same images again: keep the one stored
            return path
    tmp = directory / f".{path.stem}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    try:
        limits.check("visitor_uploads", tree_bytes(directory), UploadLimitError)
    except UploadLimitError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def _stored_digest(path: Path) -> str | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return str(stored["sha256"]) if "sha256" in stored else None
    except (OSError, ValueError, KeyError):
        return None


def stored_uploads(owner: str = "") -> list[str]:
    """Paths of the data sets stored for ``owner`` (finished .npz files), newest first."""
    directory = uploads_dir(owner)
    files = sorted(directory.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True) if directory.is_dir() else []
    return [str(p) for p in files if not p.name.startswith(".")]


def find_local(name: str, data_dir: str | None = None) -> Path | None:
    """The directory holding ``name``'s IDX files without downloading, or None."""
    if name == "digits":
        return None
    for directory in candidate_dirs(name, data_dir):
        if _find_idx(directory, IDX_FILES["train"][0]) is not None:
            return directory
    return None


FASHION_FOUND = N_("Fashion-MNIST found in {folder}")   # the reasons of default_dataset (Home translates them)
FASHION_MISSING = N_("Fashion-MNIST not found locally (install Debian's dataset-fashion-mnist or set "
                     "AELAB_DATA_DIR); using scikit-learn's embedded 8x8 digits")


def default_dataset(data_dir: str | None = None) -> tuple[str, str]:
    """(name, reason): fashion-mnist when its files are found locally, else the embedded digits."""
    found = find_local("fashion-mnist", data_dir)
    if found is not None:
        return "fashion-mnist", FASHION_FOUND.format(folder=found)
    return "digits", FASHION_MISSING


def available(data_dir: str | None = None) -> list[dict]:
    """One dict per known data set: name, whether it is available offline, and from where."""
    rows = []
    for name in DATASETS:
        if name == "digits":
            rows.append({"name": name, "available": True, "source": "embedded (scikit-learn)"})
        else:
            found = find_local(name, data_dir)
            rows.append({"name": name, "available": found is not None,
                         "source": str(found) if found else "not found locally (download needs internet)"})
    return rows
