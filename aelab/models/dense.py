"""Dense (fully connected) encoder trunk and mirrored decoder, optionally with tied weights."""
from __future__ import annotations

import math

from torch import nn

from ..config import AutoencoderConfig, ModelConfig
from .layers import TiedLinear, activation


def dense_trunk(cfg: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Sequential, int]:
    """x (B, C, H, W) -> features (B, hidden[-1]); returns the trunk and its output size."""
    layers: list[nn.Module] = [nn.Flatten()]
    size = math.prod(image_shape)
    for h in cfg.hidden:
        layers += [nn.Linear(size, h), activation(cfg.activation)]
        size = h
    return nn.Sequential(*layers), size


def dense_decoder(cfg: AutoencoderConfig, image_shape: tuple[int, int, int], latent: int,
                  tied_to: list[nn.Linear] | None = None) -> nn.Sequential:
    """z (B, latent) -> logits (B, C, H, W), mirroring the trunk's hidden sizes.

    ``tied_to``: the encoder's linear layers in decoding order (code layer first); each decoder
    layer then applies the transpose of its mirror's weights with a bias of its own.
    """
    sizes = [latent, *reversed(cfg.hidden), math.prod(image_shape)]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(TiedLinear(tied_to[i]) if tied_to else nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation(cfg.activation))
    layers.append(nn.Unflatten(1, image_shape))
    return nn.Sequential(*layers)
