"""Generation with a trained model: samples from the prior (a VAE or a GAN), interpolation, traversal of one
code dimension, the 2-D manifold grid."""
from __future__ import annotations

import numpy as np
import torch

from .data import to_float
from .latent import decode_codes as _decode


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def sample_prior(model, n: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """(n, H, W) images from codes z ~ N(0, temperature^2 I): a VAE's decoder or a GAN's generator
    (any model that ``can_sample``)."""
    model.eval()
    g = torch.Generator(_device(model)).manual_seed(seed)
    return model.sample(n, temperature, g)[:, 0].cpu().numpy()


@torch.no_grad()
def interpolate(model, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 9) -> np.ndarray:
    """(steps, H, W): decode codes on the straight line between the codes of two uint8 images (C, H, W)."""
    model.eval()
    z = model.encode(to_float(torch.stack([x_a, x_b]).to(_device(model))))
    return _decode(model, _line(z[0], z[1], steps))


@torch.no_grad()
def interpolate_noise(model, seed_a: int, seed_b: int, steps: int = 9) -> np.ndarray:
    """(steps, H, W): decode codes on the straight line between two codes drawn from N(0, I) with the
    given seeds (a GAN has no encoder, so its codes come from the prior)."""
    z = torch.stack([torch.randn(model.latent_dim, generator=torch.Generator().manual_seed(s))
                     for s in (seed_a, seed_b)]).to(_device(model))
    return _decode(model, _line(z[0], z[1], steps))


def _line(z_a: torch.Tensor, z_b: torch.Tensor, steps: int) -> torch.Tensor:
    """(steps, latent) codes evenly spaced from z_a to z_b."""
    t = torch.linspace(0, 1, steps, device=z_a.device)[:, None]
    return (1 - t) * z_a + t * z_b


@torch.no_grad()
def traverse(model, x: torch.Tensor, dim: int, span: float = 3.0, steps: int = 9) -> np.ndarray:
    """(steps, H, W): vary code dimension ``dim`` of image ``x`` over [-span, span] around zero."""
    model.eval()
    z = model.encode(to_float(x[None].to(_device(model))))
    if not 0 <= dim < z.shape[1]:
        raise ValueError(f"dim must be in [0, {z.shape[1]}), got {dim}")
    zs = z.repeat(steps, 1)
    zs[:, dim] = torch.linspace(-span, span, steps, device=z.device)
    return _decode(model, zs)


@torch.no_grad()
def manifold_grid(model, n: int = 15, quantile: float = 0.05) -> np.ndarray:
    """(n, n, H, W): decode a grid of 2-D codes at Gaussian quantiles [q, 1-q] (Kingma & Welling, fig. 4)."""
    if model.latent_dim != 2:
        raise ValueError(f"the manifold map needs a 2-D latent space, this model has {model.latent_dim}")
    model.eval()
    p = torch.linspace(quantile, 1 - quantile, n)
    v = torch.distributions.Normal(0.0, 1.0).icdf(p)
    zz = torch.stack(torch.meshgrid(v.flip(0), v, indexing="ij"), -1).reshape(-1, 2)[:, [1, 0]]
    imgs = _decode(model, zz.to(_device(model)))
    return imgs.reshape(n, n, *imgs.shape[1:])
