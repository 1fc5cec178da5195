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
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= level
        return x * keep / (1.0 - level)
    raise ValueError(f"unknown corruption {kind!r}")
