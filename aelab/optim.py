"""Optimisers with Keras's defaults, built from a TrainConfig (the models' configure_optimizers use it)."""
from __future__ import annotations

from typing import Iterable

import torch

from .config import TrainConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of ``cfg`` with Keras's default epsilon (1e-7) where it has one."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, foreach=True)
    if cfg.optimizer == "adam":
        # fused: one kernel per weight for the whole update, where the default on a CPU runs about ten small
        # ops per weight (bench/RESULTS.md, "Where a dense step's time goes")
        return torch.optim.Adam(params, lr=cfg.lr, eps=1e-7, fused=_can_fuse(params))
    if cfg.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=cfg.lr, eps=1e-7)
    if cfg.optimizer == "rmsprop":
        return KerasRMSprop(params, lr=cfg.lr, rho=cfg.rho, eps=1e-7, momentum=cfg.momentum)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def _can_fuse(params: list[torch.nn.Parameter]) -> bool:
    """Whether PyTorch's fused optimiser kernels take these weights: all floating point, on a CPU or a CUDA GPU."""
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


class KerasRMSprop(torch.optim.Optimizer):
    """RMSprop as Keras and TensorFlow compute it, which differs from ``torch.optim.RMSprop`` in where epsilon
    goes: ``v = rho v + (1 - rho) g²; m = momentum m + lr g / sqrt(v + eps); p -= m``, where PyTorch divides
    by ``sqrt(v) + eps``. With Keras's eps of 1e-7 the denominator never falls below sqrt(1e-7) = 3.2e-4,
    so a weight whose gradients are tiny moves little, where PyTorch's can take a full step of ``lr`` on noise.
    It is what brings the `vae` preset to the book's Keras result (bench/RESULTS.md, "Validation losses at the
    book's epoch counts")."""

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-7, momentum: float = 0.0):
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, rho, eps, momentum = group["lr"], group["rho"], group["eps"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state["square_avg"] = torch.zeros_like(p)
                    if momentum:
                        state["momentum"] = torch.zeros_like(p)
                v = state["square_avg"].mul_(rho).addcmul_(g, g, value=1 - rho)   # v = rho v + (1 - rho) g²
                denominator = v.add(eps).sqrt_()                                  # sqrt(v + eps): Keras's form
                if momentum:
                    p.sub_(state["momentum"].mul_(momentum).addcdiv_(g, denominator, value=lr))
                else:
                    p.addcdiv_(g, denominator, value=-lr)
        return loss
