"""Input corruption for denoising autoencoders, active in training only (as Keras layers are)."""
from __future__ import annotations

import torch


def corrupt(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Corrupt images ``x`` (floats in [0, 1]).

    - ``gaussian``: add N(0, level^2) noise (not clipped, as Keras's GaussianNoise);
    - ``dropout``: zero each pixel with probability ``level`` and scale the rest by 1/(1-level).
    """
    if kind == "none" or level <= 0:
        return x
    if kind == "gaussian":
        return x + level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if kind == "dropout":
        return drop(x, level, generator)
    raise ValueError(f"unknown corruption {kind!r}")


def drop(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inverted dropout: zero each element of ``x`` with probability ``p`` (< 1), scale the rest by 1/(1-p).

    The mask compares ``torch.rand`` with ``p``: ATen's CPU ``bernoulli_``, which ``nn.Dropout`` uses, draws
    element by element except on Intel CPUs (where it calls MKL), and took 8.9 ms for a 64x64x14x14 mask on an
    AMD host against 2.7 ms this way.
    """
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)
