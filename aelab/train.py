"""One trainer for every model: epochs, validation, callbacks, stop requests and a NaN guard.

The trainer only relies on the :class:`aelab.models.Model` contract (``configure_optimizers``,
``training_step``, ``forward`` -> Output with ``loss`` and ``terms``, ``preview``), so it never asks
which kind of model it trains.
"""
from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch

from .config import TrainConfig
from .data import Split, to_float
from .latent import encode_images


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where and what to try."""


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; a forced device that is missing is an error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if name == "mps" and not has_mps:
        raise RuntimeError("device 'mps' was asked for but Apple's MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


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


@dataclass
class TrainState:
    """A live snapshot handed to callbacks (read it, don't keep references into it)."""
    epoch: int                      # current epoch, 1-based
    epochs: int
    batch: int                      # batches done in the current epoch
    batches: int                    # batches per epoch
    loss: float                     # running mean training loss of the current epoch
    batch_loss: float               # loss of the last batch
    history: dict[str, list[float]]
    frames: list[np.ndarray] = field(default_factory=list)   # (n, H, W) previews: before training, after each epoch
    preview_input: np.ndarray | None = None   # (n, H, W) the preview images themselves (reconstructing models)
    status: str = "running"         # running | finished | stopped
    batch_terms: dict = field(default_factory=dict)   # the last batch's named terms (detached tensors)

    @property
    def preview(self) -> np.ndarray | None:
        """The latest preview: reconstructions of the preview images, or a GAN's fixed-noise samples."""
        return self.frames[-1] if self.frames else None


class Callback:
    """Override what you need; the trainer calls these from the training thread."""

    def on_train_begin(self, state: TrainState) -> None: ...
    def on_batch_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


@dataclass
class FitResult:
    history: dict[str, list[float]]
    status: str                     # finished | stopped
    seconds_per_epoch: float        # median wall time of the complete epochs
    stopped_at: tuple[int, int] | None = None   # (epoch, batch) when stopped early
    device: str = "cpu"
    frames: list[np.ndarray] = field(default_factory=list)   # the preview before training and after each epoch
    preview_input: np.ndarray | None = None
    codes: list[np.ndarray] = field(default_factory=list)    # (n, latent) codes of fixed validation images, ditto
    code_labels: np.ndarray | None = None                     # (n,) their labels

    @property
    def preview(self) -> np.ndarray | None:
        return self.frames[-1] if self.frames else None

    def timeline(self) -> dict[str, np.ndarray]:
        """What a run stores in timeline.safetensors (see :meth:`aelab.runs.Run.timeline`)."""
        out: dict[str, np.ndarray] = {}
        if self.frames:
            out["frames"] = np.stack(self.frames)
            if self.preview_input is not None:
                out["inputs"] = self.preview_input
        if self.codes:
            out["codes"] = np.stack(self.codes).astype(np.float16)   # (epochs + 1, n, latent)
            out["code_labels"] = self.code_labels
        return out


@dataclass
class Trainer:
    """Trains any :class:`aelab.models.Model`: ``model.training_step`` makes each update (one optimiser
    for an autoencoder, two alternating ones for a GAN), ``model(x, y)`` gives validation losses.

    ``preview_images`` validation images (spread evenly over the validation set) go through
    ``model.preview`` before training and after every epoch for the live view (reconstructions,
    or a GAN's fixed-noise samples); the previews are kept as ``FitResult.frames``.
    """
    cfg: TrainConfig
    callbacks: list[Callback] = field(default_factory=list)
    stop_event: threading.Event | None = None
    preview_images: int = 8
    eval_batch_size: int = 1000
    timelapse_images: int = 1000    # validation images whose codes are recorded after every epoch

    def fit(self, model: torch.nn.Module, split: Split) -> FitResult:
        cfg = self.cfg
        device = resolve_device(cfg.device)
        model.to(device)
        model.rng = torch.Generator(device).manual_seed(cfg.seed)   # corruption noise, VAE sampling, GAN codes
        shuffle_rng = torch.Generator().manual_seed(cfg.seed)
        optimizers = model.configure_optimizers(cfg)

        x_train = split.x_train.to(device)   # uint8, converted per batch
        x_val = split.x_val.to(device)
        y_train, y_val = split.y_train.to(device), split.y_val.to(device)
        n, bs = len(x_train), cfg.batch_size
        if bs > n:
            raise ValueError(f"batch_size {bs} is larger than the training set ({n} images)")
        batches = math.ceil(n / bs)
        preview_idx = torch.linspace(0, len(x_val) - 1, min(self.preview_images, len(x_val))).long()
        preview_x = to_float(x_val[preview_idx.to(device)])

        history: dict[str, list[float]] = {"epoch": []}
        lapse_idx = torch.linspace(0, len(x_val) - 1, min(self.timelapse_images, len(x_val))).long()
        lapse_x = x_val[lapse_idx.to(device)] if model.can_encode and self.timelapse_images else None
        codes = [] if lapse_x is None else [encode_images(model, lapse_x, self.eval_batch_size)]
        state = TrainState(0, cfg.epochs, 0, batches, float("nan"), float("nan"), history,
                           preview_input=preview_x[:, 0].cpu().numpy() if model.can_reconstruct else None)
        self._record_preview(model, preview_x, state)
        self._emit("on_train_begin", state)
        status, stopped_at, epoch_seconds = "finished", None, []

        for epoch in range(1, cfg.epochs + 1):
            model.train()
            state.epoch, state.batch = epoch, 0
            started = time.perf_counter()
            order = torch.randperm(n, generator=shuffle_rng).to(device)
            # a gather per batch, not one copy of the training set per epoch: 47 MB less on Fashion-MNIST
            # at the same speed (bench: app memory)
            sums: dict[str, torch.Tensor] = {}
            loss_sum = 0.0
            for b in range(batches):
                if self.stop_event is not None and self.stop_event.is_set():
                    status, stopped_at = "stopped", (epoch, b)
                    break
                idx = order[b * bs:(b + 1) * bs]
                xb = to_float(x_train[idx])
                out = model.training_step(xb, y_train[idx], optimizers)
                loss_value = out.loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingDiverged(
                        f"the training loss became {loss_value} at epoch {epoch}, batch {b + 1}/{batches} "
                        f"(learning rate {cfg.lr}, optimizer {cfg.optimizer}). Try a smaller learning rate, "
                        f"another optimizer (adam), or a smaller loss weight.")
                loss_sum += loss_value
                terms = {k: v.detach() for k, v in out.terms.items()}
                for k, v in terms.items():
                    sums[k] = sums[k] + v if k in sums else v
                state.batch, state.loss, state.batch_loss = b + 1, loss_sum / (b + 1), loss_value
                state.batch_terms = terms
                self._emit("on_batch_end", state)

            done = state.batch
            if done == 0:
                break
            train_seconds = time.perf_counter() - started
            val = self.evaluate(model, x_val, y_val)
            row = {"epoch": epoch - 1 + done / batches, "loss": loss_sum / done,
                   **{k: (v / done).item() for k, v in sums.items()},
                   **{f"val_{k}": v for k, v in val.items()},
                   "train_seconds": train_seconds, "seconds": time.perf_counter() - started}
            for k, v in row.items():
                history.setdefault(k, []).append(float(v))
            if done == batches:
                epoch_seconds.append(row["seconds"])
            self._record_preview(model, preview_x, state)
            if lapse_x is not None:
                codes.append(encode_images(model, lapse_x, self.eval_batch_size))
            self._emit("on_epoch_end", state)
            if status == "stopped":
                break

        state.status = status
        self._emit("on_train_end", state)
        model.eval()
        return FitResult(history, status,
                         statistics.median(epoch_seconds) if epoch_seconds else float("nan"),
                         stopped_at, str(device), state.frames, state.preview_input, codes,
                         y_val[lapse_idx.to(device)].cpu().numpy())

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, x_uint8: torch.Tensor,
                 y: torch.Tensor | None = None) -> dict[str, float]:
        """Mean loss and terms over ``x_uint8`` (labels ``y``) in eval mode (no corruption), weighted by batch size."""
        model.eval()
        totals: dict[str, float] = {}
        for i in range(0, len(x_uint8), self.eval_batch_size):
            xb = to_float(x_uint8[i:i + self.eval_batch_size])
            out = model(xb, None if y is None else y[i:i + self.eval_batch_size])
            for k, v in {"loss": out.loss, **out.terms}.items():
                totals[k] = totals.get(k, 0.0) + v.item() * len(xb)
        model.train()
        return {k: v / len(x_uint8) for k, v in totals.items()}

    @staticmethod
    def _record_preview(model, x: torch.Tensor, state: TrainState) -> None:
        """Append the model's live view (reconstructions of ``x``, or fixed-noise samples) to ``state.frames``."""
        images = model.preview(x)
        if images is not None:
            state.frames.append(images[:, 0].cpu().numpy())

    def _emit(self, hook: str, state: TrainState) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(state)
