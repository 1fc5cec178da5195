"""Careful file handling shared by the data sets, the uploads store and the run store."""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from . import limits
from .errors import UploadError, UploadLimitError


def read_regular_file(path: str | Path, bound: str = "upload_bytes") -> bytes:
    """The bytes of a regular file of at most the bound ``bound``. Devices, pipes and folders are refused
    (a FIFO would hang, /dev/zero never ends), and the size is the opened file's, not the name's."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)   # O_NONBLOCK: opening a FIFO does not wait for a writer
    except FileNotFoundError:
        raise UploadError("{name} is gone: it was deleted, or removed after its owner's last visit "
                          "(AELAB_SESSION_TTL_HOURS)", name=path.name) from None
    except OSError as e:
        raise UploadError("{name}: cannot read ({reason})", name=path.name, reason=e.strerror or e) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UploadError("{name} is not a regular file (a device, a pipe or a folder); give an .npz or a .zip",
                          name=path.name)
    with os.fdopen(fd, "rb") as f:
        limits.check(bound, info.st_size, UploadLimitError, path.name)
        data = f.read(int(limits.limit(bound) * 1e6) + 1)
    limits.check(bound, len(data), UploadLimitError, path.name)   # a file that grew while it was read
    return data


def tree_bytes(root: str | Path) -> int:
    """Bytes of the regular files below ``root`` (0 when it does not exist); links are not followed."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def newest_mtime(path: Path) -> float:
    """The latest modification time of ``path`` and anything directly inside it."""
    times = [path.stat().st_mtime]
    if path.is_dir():
        times += [p.stat().st_mtime for p in path.iterdir()]
    return max(times)


def remove_idle(root: str | Path, max_age_s: float, prefix: str = "") -> int:
    """Delete the entries of ``root`` (named ``prefix``...) untouched for ``max_age_s`` seconds; how many."""
    root, removed, now = Path(root), 0, time.time()
    if not root.is_dir():
        return 0
    for entry in root.iterdir():
        if not entry.name.startswith(prefix):
            continue
        try:
            idle = now - newest_mtime(entry) > max_age_s
        except OSError:   # removed meanwhile
            continue
        if idle:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed += 1
    return removed


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` all at once (a temporary file renamed): a reader sees the old file or the
    new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(obj, indent=1))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def keep_newest(directory: Path, kept: int, pattern: str = "*") -> None:
    """Remove the entries of ``directory`` matching ``pattern`` (files or folders) beyond the ``kept`` most recently
    modified. Another process may be removing them too: what is gone is gone."""
    ages = {}
    for p in directory.glob(pattern):
        try:
            ages[p] = p.stat().st_mtime
        except OSError:
            continue
    for p in sorted(ages, key=ages.get, reverse=True)[kept:]:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
