"""A small image classifier: the domain feature extractor of AE Lab's Fréchet distance (quality.py).

Encoder trunk (dense ``hidden`` or conv ``channels`` with pooling) -> dense ``features`` -> dropout ->
class logits. ``encode`` gives the features.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ClassifierConfig, ConfigError
from .base import Model, Output
from .conv import conv_trunk
from .dense import dense_trunk
from .layers import Dropout, activation


class Classifier(Model):
    can_encode = True

    def __init__(self, cfg: ClassifierConfig, image_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        if n_classes < 2:
            raise ConfigError("a classifier needs a data set with at least 2 classes, got {n_classes}",
                              n_classes=n_classes)
        self.cfg, self.image_shape, self.latent_dim, self.n_classes = cfg, tuple(image_shape), cfg.features, n_classes
        build_trunk = dense_trunk if cfg.arch == "dense" else conv_trunk
        self.trunk, size = build_trunk(cfg, self.image_shape)
        self.features = nn.Sequential(nn.Linear(size, cfg.features), activation(cfg.activation))
        self.head = nn.Sequential(Dropout(cfg.dropout), nn.Linear(cfg.features, n_classes))
        if cfg.arch == "conv":
            self.to(memory_format=torch.channels_last)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [0, 1] -> features (B, latent)."""
        if self.cfg.arch == "conv":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.features(self.trunk(x))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, rng: torch.Generator | None = None) -> Output:
        """Cross-entropy of the class logits against the labels ``y``, and the accuracy."""
        if y is None:
            raise ValueError("a classifier trains on labelled images; this data set has no labels")
        z = self.encode(x)
        logits = self.head(z)
        loss = F.cross_entropy(logits, y)
        return Output(loss, {"acc": (logits.argmax(1) == y).float().mean()}, logits, z)
