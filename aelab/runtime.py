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
- **ATen's AVX2 kernels on AVX-512 hosts** (:func:`choose_kernels`, run when ``aelab`` is imported): the
  AVX-512 build of ``expm1``, which SELU and ELU use, ran 4x slower than its AVX2 build on a Zen 4 host
  (401,408 floats: 1.80 against 0.43 ms), so `conv`'s SELUs took a third of its step. Matrix products (MKL)
  and convolutions (oneDNN) choose their own kernels and are not affected. torch.compile's cache then goes
  to a folder of its own.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import tempfile
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

MMAP_THRESHOLD = 32 << 20   # bytes: glibc's largest; bigger blocks (a 1,000-image validation batch) still use mmap
TRIM_THRESHOLD = 64 << 20   # bytes of free heap top that glibc keeps before it returns memory to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8   # mallopt parameters, from glibc's malloc.h
# Images per batch wherever a model only runs forward (validation, codes, reconstructions, features): small
# enough that a conv layer's activations (256 x 16 x 28 x 28 floats, 12.8 MB) stay in the heap rather than
# in fresh mmap'd pages, large enough that per-batch overhead does not show. Validating `conv` on 6,000 images in
# batches of 1,000 faulted 110,000-230,000 pages a pass (at 256: under 600) and peaked 128 MB higher.
INFERENCE_BATCH = 256


KERNELS_VARIABLE = "ATEN_CPU_CAPABILITY"   # torch reads it once, at its first CPU kernel


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's instruction-set flags (``avx2``, ``avx512f``, ...); empty where there is no cpuinfo."""
    try:
        with cpuinfo.open() as lines:
            for line in lines:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def choose_kernels(environ=os.environ, flags: set[str] | None = None) -> str | None:
    """On a CPU with AVX-512, ask torch for its AVX2 elementwise kernels (see the module's docstring), unless
    ``ATEN_CPU_CAPABILITY`` is set already (set it to ``avx512`` to keep those); ``TORCHINDUCTOR_CACHE_DIR`` too,
    unless set. Takes effect only before torch's first CPU kernel runs, so ``aelab`` calls it on import. Returns
    the value it set, or None."""
    if KERNELS_VARIABLE in environ or "avx512f" not in (cpu_flags() if flags is None else flags):
        return None
    environ[KERNELS_VARIABLE] = "avx2"
    # torch.compile's C++ kernels are cached without the kernel set in their key: one built by an AVX-512 process
    # and loaded by an AVX2 one gave NaN losses (and the other way round, a malloc crash), so keep them apart
    environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(),
                                                               f"torchinductor_aten_avx2_uid{os.getuid()}"))
    return "avx2"


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, or None where it is not glibc (musl, macOS: no mallopt or malloc_trim, nothing to tune)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim  # noqa: B018  (raises AttributeError where it is missing: not glibc)
    except (OSError, AttributeError):
        return None
    return libc


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds (see the module's docstring); False where libc is not glibc."""
    libc = _libc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def fewer_malloc_arenas() -> bool:
    """glibc gives threads their own malloc arenas (up to 8 per core), and freed memory stays in them: with
    a training thread, a t-SNE thread and the server's threads that is tens of MB of RSS for nothing.
    Two arenas (what MALLOC_ARENA_MAX=2 sets) measured 35 MB less at the same speed (bench: app memory).
    False where libc is not glibc."""
    libc = _libc()
    return libc is not None and bool(libc.mallopt(_M_ARENA_MAX, 2))


def release_freed_memory() -> bool:
    """Give the heap's free memory back to the kernel (glibc's ``malloc_trim``), which the thresholds above keep
    for the next training step: between the stages of a run's evaluation, whose blocks differ in size from one
    stage to the next. False where libc is not glibc (True on glibc, whether or not there was any to give)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    return libc is not None


def configure(threads: int | None = None) -> dict:
    """Tune this process for training: malloc thresholds, and ``threads`` for torch and for the OpenMP/BLAS
    pools of numpy, scipy and scikit-learn (None: torch's default, one per core). Returns what was set, and the
    elementwise kernels in use (``kernels``: ``AVX2``, ``AVX512``, ...)."""
    if threads is not None:
        torch.set_num_threads(threads)
    threadpool_limits(torch.get_num_threads())
    return {"threads": torch.get_num_threads(), "malloc_tuned": tune_malloc(), "cpus": os.cpu_count(),
            "kernels": torch.backends.cpu.get_cpu_capability()}


choose_kernels()   # on import, so before torch's first CPU kernel in any process that imports aelab first
