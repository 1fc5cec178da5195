"""Models: one Autoencoder class over architectures (dense, conv) x objectives, a GAN, and the domain
classifier used by the quality measure. ``build_model`` picks the class from the config's family, after
``check_size`` has estimated, without allocating anything, that training it fits the memory bound."""
from __future__ import annotations

import torch
from torch import nn

from .. import limits
from ..config import ModelConfig
from ..errors import ModelLimitError
from .autoencoder import Autoencoder
from .base import Model, Output
from .classifier import Classifier
from .gan import GAN, GANSteps

MODEL_CLASSES: dict[str, type[Model]] = {"autoencoder": Autoencoder, "gan": GAN, "classifier": Classifier}


def _construct(cfg: ModelConfig, image_shape: tuple[int, int, int], n_classes: int) -> Model:
    if cfg.family == "classifier":
        return Classifier(cfg, image_shape, n_classes)
    return MODEL_CLASSES[cfg.family](cfg, image_shape)


def footprint(cfg: ModelConfig, image_shape: tuple[int, int, int], batch_size: int,
              n_classes: int = 10) -> tuple[int, int]:
    """(parameters, bytes to train them on batches of ``batch_size``), estimated from the model built on
    PyTorch's meta device (shapes only: no weight is allocated, whatever the config asks for). Bytes:
    weights, gradients, two optimiser states and the trainer's copy of the last finite epoch's weights
    (5 x 4 bytes per parameter), and the values each image
    leaves for the backward pass, with their gradients (2 x 4 bytes each): a dense layer's output and its
    activation; a convolution's output, activation and pooling at the image's full size (an upper
    bound: the trunks shrink the maps, the decoders grow them back to it); an LSTM's six values per unit and row."""
    try:
        with torch.device("meta"):
            model = _construct(cfg, image_shape, max(n_classes, 2))
    except (RuntimeError, OverflowError):   # sizes past what PyTorch can even describe
        return -1, 2 ** 63
    pixels = image_shape[1] * image_shape[2]
    values = 2 * image_shape[0] * pixels   # the input and the output image
    for m in model.modules():
        if isinstance(m, nn.Linear):
            values += 2 * m.out_features
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            values += 3 * m.out_channels * pixels
        elif isinstance(m, nn.LSTM):   # per row: its state, cell and four gates, kept for the backward pass
            values += 6 * m.hidden_size * image_shape[1]
    params = sum(p.numel() for p in model.parameters())
    return params, 20 * params + 8 * values * batch_size


def check_size(cfg: ModelConfig, image_shape: tuple[int, int, int], batch_size: int, n_classes: int = 10) -> int:
    """The estimated bytes to train ``cfg`` (see :func:`footprint`); raises :class:`ModelLimitError` above
    ``AELAB_MAX_MODEL_MB``, naming the bound and by how much."""
    params, nbytes = footprint(cfg, image_shape, batch_size, n_classes)
    size = f"{params:,} parameters" if params >= 0 else "too many parameters to count"
    limits.check("model_memory", nbytes, ModelLimitError,
                 f"the memory to train this model ({size}, batch {batch_size})")
    return nbytes


def build_model(cfg: ModelConfig, image_shape: tuple[int, int, int], seed: int = 42, n_classes: int = 10) -> Model:
    """Build and initialise (Keras defaults, from ``seed``) the model of a validated ``cfg`` for images of
    ``image_shape``. ``n_classes`` is only used by the classifier family."""
    model = _construct(cfg, image_shape, n_classes)
    model.reset_parameters(seed)
    return model


__all__ = ["Autoencoder", "Classifier", "GAN", "GANSteps", "MODEL_CLASSES", "Model", "Output", "build_model",
           "check_size", "footprint"]
