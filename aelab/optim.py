"""Optimisers with Keras's defaults, built from a TrainConfig (the models' configure_optimizers use it)."""
from __future__ import annotations

from typing import Iterable

import torch

from .config import TrainConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of ``cfg`` with Keras's default epsilon (1e-7) where it has one."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, eps=1e-7)
    if cfg.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=cfg.lr, eps=1e-7)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.rho, eps=1e-7, momentum=cfg.momentum)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
