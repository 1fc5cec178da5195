"""The one model contract that the trainer, the run store and the analysis rely on, for every family."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..optim import make_optimizer
from .layers import keras_init_


@dataclass
class Update:
    """How a training step turns its losses into updates, beyond ``loss.backward(); optimizer.step()``:

    - ``loss_scale`` multiplies each loss before ``backward`` (a rank's share of a distributed batch);
    - ``autocast``: the forward passes run under ``torch.autocast`` in bf16 or fp16 (``forward()``), the
      backward passes outside it, as PyTorch advises;
    - ``scaler``: fp16's GradScaler scales the losses and skips a step whose gradients overflowed.
    The default is the plain fp32 step of a single process."""
    loss_scale: float = 1.0
    device_type: str = "cpu"
    autocast: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    def forward(self) -> contextlib.AbstractContextManager:
        """The context of a training step's forward passes (and its losses)."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast)

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of ``loss`` (times ``loss_scale`` unless it is 1, scaled for fp16)."""
        if self.loss_scale != 1.0:
            loss = loss * self.loss_scale
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; with fp16, unless the gradients overflowed, and the scale adapts after each
        step (a GAN steps two optimisers, the discriminator's maybe several times, per batch)."""
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()


PLAIN = Update()


@dataclass
class Output:
    """What ``forward`` and ``training_step`` return: the loss to minimise, its named terms, the logits, the code."""
    loss: torch.Tensor                      # scalar
    terms: dict[str, torch.Tensor]          # named scalars: recon (per pixel), kl (nats/image), acc, d_loss, ...
    logits: torch.Tensor | None             # autoencoder: image logits (B, C, H, W), to_image = reconstruction;
                                            # classifier: class logits (B, K); GAN: the fakes' image logits
                                            # in validation, None after a training step
    z: torch.Tensor                         # (B, latent): the code (a VAE: the posterior mean), the classifier's
                                            # features, or the GAN's random codes


class Model(nn.Module):
    """What the trainer, the run store and the pages rely on, for every model family.

    ``forward(x, y, rng)`` returns an :class:`Output` (evaluation, no update); ``training_step`` makes one
    update with what ``configure_optimizers`` returned. The default is one optimiser and
    ``loss.backward()``; a GAN alternates its two networks. ``rng`` drives every random draw of a step
    (input corruption, a VAE's sample, a GAN's codes), so the same seed gives the same run.
    """
    can_reconstruct = False    # encode + decode give images back (reconstruction pages and metrics)
    can_encode = False         # encode(x) gives a code (latent space page, probes)
    cfg: ModelConfig

    @property
    def can_sample(self) -> bool:
        """sample(n) draws new images (generate page, quality measure)."""
        return self.cfg.generative

    def configure_optimizers(self, cfg: TrainConfig) -> Any:
        """What ``training_step`` needs to update the model; the trainer hands it back unchanged."""
        return make_optimizer(self.parameters(), cfg)

    def training_step(self, x: torch.Tensor, y: torch.Tensor | None, optimizers: Any,
                      rng: torch.Generator | None = None, update: Update = PLAIN) -> Output:
        """One update on the batch ``x`` (labels ``y``, if the data set has them); returns the Output.
        ``update`` says how gradients are made and applied (distributed share, mixed precision)."""
        with update.forward():
            out = self.stepped("model")(x, y, rng)
        optimizers.zero_grad(set_to_none=True)
        update.backward(out.loss)
        update.step(optimizers)
        return out

    # ------------------------------------------------------------------------ distributed training
    def step_networks(self) -> dict[str, nn.Module]:
        """The networks a training step updates, each called through :meth:`stepped`: the whole model (a GAN
        steps its generator and discriminator in turn)."""
        return {"model": self}

    def distribute(self, wrap: Callable[[nn.Module], nn.Module] | None) -> None:
        """Make the training step's passes through ``wrap(network)`` (DistributedDataParallel, so that their
        gradients are all-reduced, and/or ``torch.compile``) for each of :meth:`step_networks`; ``None`` goes back
        to plain calls."""
        # a plain dict, not submodules: the wrappers hold this model, and must not be saved with it
        self.__dict__["_stepped"] = {name: wrap(net) for name, net in self.step_networks().items()} if wrap else {}

    def stepped(self, name: str) -> nn.Module:
        """The network ``name`` of :meth:`step_networks` as a training step calls it: its wrapper when
        distributed or compiled, else the network itself."""
        wrapped = self.__dict__.get("_stepped", {}).get(name)
        return wrapped if wrapped is not None else self.step_networks()[name]

    def to_image(self, logits: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from image logits (``decode``'s output): their sigmoid, unless the model says otherwise."""
        return torch.sigmoid(logits)

    @torch.no_grad()
    def preview(self, x: torch.Tensor) -> torch.Tensor | None:
        """Images (n, C, H, W) in [0, 1] for the live view: reconstructions of ``x``, or fixed-noise samples."""
        return None

    def reset_parameters(self, seed: int) -> None:
        """Keras-default initialisation (Glorot uniform, zero bias), reproducible from ``seed``."""
        keras_init_(self, torch.Generator().manual_seed(seed))
