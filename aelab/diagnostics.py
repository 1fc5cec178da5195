"""What the code units do: the book's activation histograms (sparse autoencoders), and for a VAE the KL of
each latent dimension to the prior, with the number of active units (posterior collapse made visible)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import to_float

ACTIVE_KL_NATS = 0.01   # a latent dimension whose mean KL to the prior is below this carries no information
BATCH = 1000


@dataclass
class CodeDiagnostics:
    codes: np.ndarray                  # (N, latent) codes of the images (a VAE: posterior means)
    kl_per_dim: np.ndarray | None      # (latent,) mean KL(q(z_d | x) || N(0, 1)) in nats; None unless a VAE
    sparsity_target: float | None      # the target mean activation of a KL-sparse autoencoder, else None

    @property
    def unit_means(self) -> np.ndarray:
        """(latent,) each code unit's mean activation over the images."""
        return self.codes.mean(axis=0)

    @property
    def active_units(self) -> int | None:
        """Latent dimensions whose mean KL exceeds ``ACTIVE_KL_NATS`` (VAE only)."""
        return None if self.kl_per_dim is None else int((self.kl_per_dim > ACTIVE_KL_NATS).sum())


def gaussian_kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) of every (image, dimension): (N, latent) -> (N, latent) nats."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


@torch.no_grad()
def code_diagnostics(model, x_uint8: torch.Tensor) -> CodeDiagnostics:
    """The codes of ``x_uint8`` (N, C, H, W) under an autoencoder ``model``, and a VAE's per-dimension KL."""
    model.eval()
    codes, kls = [], []
    for i in range(0, len(x_uint8), BATCH):
        x = to_float(x_uint8[i:i + BATCH])
        if model.is_variational:
            mean, logvar = model.posterior(x)
            codes.append(mean)
            kls.append(gaussian_kl_per_dim(mean, logvar).sum(0))
        else:
            codes.append(model.encode(x))
    cfg = model.cfg
    return CodeDiagnostics(
        codes=torch.cat(codes).flatten(1).numpy(),
        kl_per_dim=(torch.stack(kls).sum(0) / len(x_uint8)).numpy() if kls else None,
        sparsity_target=cfg.sparsity_target if cfg.sparsity == "kl" else None)
