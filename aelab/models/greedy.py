"""Greedy layer-wise training of a dense autoencoder (HOML ch. 17, "Training One Autoencoder at a Time").

A dense stack 784 -> 100 -> 30 -> 100 -> 784 is trained as a sequence of shallow autoencoders: phase 1 the
outer one (784 -> 100 -> 784) on the images, phase 2 an inner one (100 -> 30 -> 100) on the outer codes,
and so on inwards. Each :class:`Phase` is a :class:`~aelab.models.base.Model` over the stack's own layers,
so the one trainer trains it; the layers below it are frozen (not its parameters). Its loss is the book's:
the stack's reconstruction loss for the outer phase, the MSE between the inner decoder's output and the
codes it reads for the others; the term ``recon`` is always the images' reconstruction loss through the
layers trained so far, so one curve compares the phases.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..noise import corrupt
from .base import Model, Output


def dense_layers(model) -> tuple[list[nn.Sequential], list[nn.Sequential]]:
    """(encoder layers from the image inwards, decoder layers in the same order) of a dense autoencoder: each
    a Linear and its activation; decoder layer i is encoder layer i's mirror (layer 0's has no activation:
    the logits)."""
    trunk = [m for m in model.trunk if not isinstance(m, nn.Flatten)]
    encoder = [nn.Sequential(*trunk[j:j + 2]) for j in range(0, len(trunk), 2)] + [model.to_code]
    decoder = [m for m in model.decoder if not isinstance(m, nn.Unflatten)]
    mirrored = [nn.Sequential(*decoder[j:j + 2]) for j in range(0, len(decoder), 2)]   # code side first
    return encoder, mirrored[::-1]


class Phase(Model):
    """Phase ``index`` (0 = outermost) of greedy training of the dense autoencoder ``model``: trains encoder
    layer ``index`` and its mirror on what that layer reads, the layers before it frozen."""
    can_reconstruct = can_encode = True

    def __init__(self, model, index: int):
        super().__init__()
        self.cfg, self.index = model.cfg, index
        self.stack = [model]   # a list: the whole stack's parameters are not this phase's
        encoder, decoder = dense_layers(model)
        self.below, self.above = encoder[:index], decoder[:index]   # frozen: what feeds it, what decodes it
        self.enc, self.dec = encoder[index], decoder[index]          # trained

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """What this phase's encoder reads from the images ``x``: the flattened images for the outer phase, else
        the frozen codes of the layer below."""
        h = x.flatten(1)
        with torch.no_grad():
            for layer in self.below:
                h = layer(h)
        return h

    def _to_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Decode ``h`` (what this phase's decoder output) through the frozen outer decoder layers to logits."""
        for layer in reversed(self.above):
            h = layer(h)
        return h.reshape(-1, *self.stack[0].image_shape)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, rng: torch.Generator | None = None) -> Output:
        cfg = self.cfg
        x_in = corrupt(x, cfg.noise, cfg.noise_level, rng) if self.training and self.index == 0 else x
        h = self._input(x_in)
        z = self.enc(h)
        out = self.dec(z)
        if self.index == 0:
            logits = out.reshape(x.shape)
            loss = losses.reconstruction(logits, x, cfg.loss, cfg.output)
            recon = loss.detach()
        else:
            loss = F.mse_loss(out, h)   # the book: MSE between the codes and their reconstruction
            with torch.no_grad():
                logits = self._to_logits(out)
                recon = losses.reconstruction(logits, x, cfg.loss, cfg.output)
        terms = {"recon": recon}
        if cfg.loss == "bce":
            terms["rounded_acc"] = losses.rounded_accuracy(x, logits.detach())
        return Output(loss, terms, logits.detach(), z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The whole stack's code (what the time-lapse records)."""
        return self.stack[0].encode(x)

    @torch.no_grad()
    def preview(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions through the layers trained so far (this phase's included)."""
        was_training = self.training
        self.eval()
        images = self.stack[0].to_image(self._to_logits(self.dec(self.enc(self._input(x)))))
        self.train(was_training)
        return images
