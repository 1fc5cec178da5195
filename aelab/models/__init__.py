"""Models: one Autoencoder class over architectures (dense, conv) x objectives, a GAN, and the domain
classifier used by the quality measure. ``build_model`` picks the class from the config's family."""
from __future__ import annotations

from ..config import ModelConfig
from .autoencoder import Autoencoder
from .base import Model, Output
from .classifier import Classifier
from .gan import GAN, GANSteps


def build_model(cfg: ModelConfig, image_shape: tuple[int, int, int], seed: int = 42, n_classes: int = 10) -> Model:
    """Build and initialise (Keras defaults, from ``seed``) the model of a validated ``cfg`` for images of
    ``image_shape``. ``n_classes`` is only used by the classifier family."""
    if cfg.family == "classifier":
        model: Model = Classifier(cfg, image_shape, n_classes)
    elif cfg.family == "gan":
        model = GAN(cfg, image_shape)
    else:
        model = Autoencoder(cfg, image_shape)
    model.reset_parameters(seed)
    return model


__all__ = ["Autoencoder", "Classifier", "GAN", "GANSteps", "Model", "Output", "build_model"]
