"""Models: one Autoencoder class over architectures (dense, conv) x objectives."""
from __future__ import annotations

from ..config import ModelConfig
from .base import Autoencoder, Output


def build_model(cfg: ModelConfig, image_shape: tuple[int, int, int], seed: int = 42) -> Autoencoder:
    """Build and initialise (Keras defaults, from ``seed``) the model ``cfg`` for images of ``image_shape``."""
    model = Autoencoder(cfg, image_shape)
    model.reset_parameters(seed)
    return model


__all__ = ["Autoencoder", "Output", "build_model"]
