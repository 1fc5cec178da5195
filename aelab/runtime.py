"""How an AE Lab process that trains or projects uses the machine, set in one place: the CLI, the workers
and the benchmarks call :func:`configure` before they work.

What it sets, and the measurement behind each (bench/RESULTS.md, "Steady numbers"):

- **glibc malloc** keeps freed blocks of up to 32 MB in the heap instead of returning them to the kernel.
  By default glibc serves blocks over a moving threshold with ``mmap`` and may trim the heap's top after a
  free, so activations can come back as fresh pages (about 4 µs a page fault in this VM). A script training
  `conv` without a data set loaded first faulted about 1,300 pages a step in 3 of 5 starts (21 against
  17 ms a step); with the fixed thresholds, in none.
- **inference batches** of :data:`INFERENCE_BATCH` images (see there).
- **threads**: torch's intra-op pool and the OpenMP / BLAS pools of numpy, scipy and scikit-learn
  (``threadpoolctl``) get the same count, so no idle pool spins beside the busy one.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch
from threadpoolctl import threadpool_limits

MMAP_THRESHOLD = 32 << 20   # bytes: glibc's largest; bigger blocks (a 1,000-image validation batch) still use mmap
TRIM_THRESHOLD = 64 << 20   # bytes of free heap top that glibc keeps before it returns memory to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # mallopt parameters, from glibc's malloc.h
# Images per batch wherever a model only runs forward (validation, codes, reconstructions, features): small
# enough that a conv layer's activations (256 x 16 x 28 x 28 floats, 12.8 MB) stay in the heap rather than
# in fresh mmap'd pages, large enough that per-batch overhead does not show. Validating `conv` on 6,000 images in
# batches of 1,000 faulted 110,000-230,000 pages a pass (at 256: under 600) and peaked 128 MB higher.
INFERENCE_BATCH = 256


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds (see the module's docstring); False where libc is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # musl, macOS: no mallopt, nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def configure(threads: int | None = None) -> dict:
    """Tune this process for training: malloc thresholds, and ``threads`` for torch and for the OpenMP/BLAS
    pools of numpy, scipy and scikit-learn (None: torch's default, one per core). Returns what was set."""
    if threads is not None:
        torch.set_num_threads(threads)
    threadpool_limits(torch.get_num_threads())
    return {"threads": torch.get_num_threads(), "malloc_tuned": tune_malloc(), "cpus": os.cpu_count()}
