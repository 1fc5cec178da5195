"""What the code units do: the book's activation histograms (sparse autoencoders), and for a VAE the KL of
each latent dimension to the prior, with the number of active units (posterior collapse made visible)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import to_float
from .runtime import INFERENCE_BATCH
from .train import Callback, TrainState

ACTIVE_KL_NATS = 0.01   # a latent dimension whose mean KL to the prior is below this carries no information


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
    for i in range(0, len(x_uint8), INFERENCE_BATCH):
        x = to_float(x_uint8[i:i + INFERENCE_BATCH])
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


class ActiveUnitsRecorder(Callback):
    """A trainer callback for variational autoencoders: after every epoch, the number of active units
    (:attr:`CodeDiagnostics.active_units`) over ``n_images`` validation images, as the history's
    ``active_units`` column, so that posterior collapse shows while it happens."""

    def __init__(self, n_images: int = 1000):
        self.n_images = n_images
        self._x: torch.Tensor | None = None

    def on_train_begin(self, state: TrainState) -> None:
        if getattr(state.model, "is_variational", False):
            self._x = state.split.val_sample(self.n_images)[0]

    def on_epoch_end(self, state: TrainState) -> None:
        if self._x is not None:
            state.record("active_units", code_diagnostics(state.model, self._x).active_units)


# ------------------------------------------------------------------------------------ semantic hashing
BINARY_MARGIN = 0.1   # an activation within this of 0 or 1 counts as a bit


def hashable(model_cfg) -> bool:
    """Whether a model's codes are sigmoid units that can be read as bits (the book's hashing autoencoder,
    or any autoencoder with a sigmoid code layer)."""
    return (getattr(model_cfg, "family", "") == "autoencoder" and model_cfg.code_activation == "sigmoid"
            and not model_cfg.variational)


def hashes(codes: np.ndarray) -> np.ndarray:
    """(N,) int64 hashes of codes (N, bits) in [0, 1]: each code rounded to 0/1, bit i weighing 2**i (the
    book's order). At most 62 bits."""
    if codes.shape[1] > 62:
        raise ValueError(f"a hash holds at most 62 bits; these codes have {codes.shape[1]} units")
    bits = np.round(codes).astype(np.int64)
    return bits @ (np.int64(1) << np.arange(codes.shape[1], dtype=np.int64))


def binary_share(codes: np.ndarray, margin: float = BINARY_MARGIN) -> float:
    """The share of code activations within ``margin`` of 0 or 1: near 1 for codes that are bits."""
    return float(np.mean((codes < margin) | (codes > 1 - margin)))


@dataclass
class HashLookup:
    query: int                 # the query image's index
    hash: int
    same: np.ndarray           # indices of the other images with the same hash
    near: np.ndarray           # indices of the images at Hamming distance 1
    near_bit: np.ndarray       # (len(near),) the bit each of those differs in
    buckets: int               # distinct hashes among all the images


def hash_lookup(table: np.ndarray, query: int) -> HashLookup:
    """The images of ``table`` ((N,) hashes) that share image ``query``'s hash, and those one bit away."""
    if not 0 <= query < len(table):
        raise ValueError(f"image {query} is not among the {len(table)} hashed images")
    h = int(table[query])
    diff = np.bitwise_xor(table, np.int64(h))
    same = np.flatnonzero(diff == 0)
    one_bit = (diff != 0) & ((diff & (diff - 1)) == 0)   # a single bit set
    near = np.flatnonzero(one_bit)
    return HashLookup(query, h, same[same != query], near, np.log2(diff[near]).astype(int),
                      len(np.unique(table)))


def summary(model, x_uint8: torch.Tensor) -> dict[str, float]:
    """A run's code diagnostics in numbers (metrics.json, ``python -m aelab eval``): the images encoded, the
    mean activation; a VAE's active units and latent size; for sigmoid codes the share of activations near 0
    or 1 and how many distinct hashes the images get."""
    d = code_diagnostics(model, x_uint8)
    out: dict[str, float] = {"images": len(d.codes), "mean_activation": float(d.codes.mean())}
    if d.kl_per_dim is not None:
        out.update(active_units=d.active_units, latent=len(d.kl_per_dim))
    if hashable(model.cfg) and d.codes.shape[1] <= 62:
        out.update(binary_share=binary_share(d.codes), distinct_hashes=len(np.unique(hashes(d.codes))))
    return out

