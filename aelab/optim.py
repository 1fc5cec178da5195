"""Optimisers with Keras's defaults, built from a TrainConfig (the models' configure_optimizers use it)."""
from __future__ import annotations

from typing import Iterable

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from .config import TrainConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of ``cfg`` with Keras's default epsilon (1e-7) where it has one."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return LeanSGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        # fused: one kernel per weight for the whole update, where the default on a CPU runs about ten small
        # ops per weight (`linear`'s step: 1.14 -> 0.84 ms, bench/RESULTS.md)
        return torch.optim.Adam(params, lr=cfg.lr, eps=1e-7, fused=_can_fuse(params))
    if cfg.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=cfg.lr, eps=1e-7)
    if cfg.optimizer == "rmsprop":
        return KerasRMSprop(params, lr=cfg.lr, rho=cfg.rho, eps=1e-7, momentum=cfg.momentum)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def _can_fuse(params: list[torch.nn.Parameter]) -> bool:
    """Whether PyTorch's fused optimiser kernels take these weights: all floating point, on a CPU or a CUDA GPU."""
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def _step_is_watched(optimizer: torch.optim.Optimizer) -> bool:
    """Whether a step must go through torch.optim's wrapper: step hooks registered (on this optimiser or on
    all of them), or a profiler recording."""
    return bool(optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
                or _global_optimizer_pre_hooks or _global_optimizer_post_hooks
                or torch.autograd.profiler._is_profiler_enabled)


class _ForeachSteps:
    """What aelab's optimisers share: a step that hands each group's weights that have gradients to ``_update``
    (foreach updates of all of them at once), and ``zero_grad(set_to_none=True)`` as a plain loop: torch.optim's
    own takes 12-22 µs for eight weights (a profiler record and a foreach grouping), 0.7 µs here, on a step of
    the book's small models of about 1.5 ms. The step skips torch.optim's wrapper (step hooks and a profiler
    record, 25-30 µs a step) unless a hook or a profiler is there to see it."""

    def _update(self, group: dict, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        raise NotImplementedError

    def step(self, closure=None):
        if _step_is_watched(self):
            return self._watched_step(closure)
        return self._step(closure)

    step.hooked = True   # torch.optim.Optimizer.__init__ wraps a class's step unless it is marked so

    @torch.no_grad()
    def _step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(group, params, [p.grad for p in params])
        return loss

    _watched_step = torch.optim.Optimizer.profile_hook_step(_step)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            return super().zero_grad(set_to_none=False)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


class LeanSGD(_ForeachSteps, torch.optim.SGD):
    """``torch.optim.SGD`` (momentum, Nesterov; no dampening, weight decay or maximize), the same numbers to the
    bit, with each step one foreach update of all the weights: SGD's step on a CPU runs a Python loop of single-
    tensor updates behind its argument handling, 100-130 µs for the `stacked` preset's eight weights, where this
    takes 50-70 µs (bench/RESULTS.md)."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov)

    def _update(self, group: dict, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        momentum = group["momentum"]
        if momentum:
            kept = [(self.state[p]["momentum_buffer"], g) for p, g in zip(params, grads)
                    if "momentum_buffer" in self.state[p]]
            if kept:   # buffer = momentum * buffer + gradient
                torch._foreach_mul_([b for b, _ in kept], momentum)
                torch._foreach_add_([b for b, _ in kept], [g for _, g in kept])
            for p, g in zip(params, grads):   # a first step's buffer is the gradient, as torch.optim.SGD's
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = g.detach().clone()
            buffers = [self.state[p]["momentum_buffer"] for p in params]
            grads = torch._foreach_add(grads, buffers, alpha=momentum) if group["nesterov"] else buffers
        torch._foreach_add_(params, grads, alpha=-group["lr"])


class KerasRMSprop(_ForeachSteps, torch.optim.Optimizer):
    """RMSprop as Keras and TensorFlow compute it, which differs from ``torch.optim.RMSprop`` in where epsilon
    goes: ``v = rho v + (1 - rho) g²; m = momentum m + lr g / sqrt(v + eps); p -= m``, where PyTorch divides
    by ``sqrt(v) + eps``. With Keras's eps of 1e-7 the denominator never falls below sqrt(1e-7) = 3.2e-4,
    so a weight whose gradients are tiny moves little, where PyTorch's can take a full step of ``lr`` on noise.
    It closed the `vae` preset's gap to the book's Keras code: 0.3178 against Keras's 0.3179 after 25 epochs,
    0.3140 with PyTorch's form (bench/RESULTS.md)."""

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-7, momentum: float = 0.0):
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "momentum": momentum})

    def _update(self, group: dict, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        for p in params:
            if not self.state[p]:
                self.state[p]["square_avg"] = torch.zeros_like(p)
                if group["momentum"]:
                    self.state[p]["momentum"] = torch.zeros_like(p)
        square_avgs = [self.state[p]["square_avg"] for p in params]
        torch._foreach_mul_(square_avgs, group["rho"])
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - group["rho"])
        denominators = torch._foreach_add(square_avgs, group["eps"])
        torch._foreach_sqrt_(denominators)
        if group["momentum"]:
            buffers = [self.state[p]["momentum"] for p in params]
            torch._foreach_mul_(buffers, group["momentum"])
            torch._foreach_addcdiv_(buffers, grads, denominators, value=group["lr"])
            torch._foreach_sub_(params, buffers)
        else:
            torch._foreach_addcdiv_(params, grads, denominators, value=-group["lr"])
