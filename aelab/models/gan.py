"""Generative adversarial network: a generator that tries to fool a discriminator (HOML ch. 17).

The discriminator is built like an encoder (dense ``hidden`` sizes, or ``channels`` as stride-2
convolutions) ending in one logit; the generator mirrors it from a code of size ``codings``:
dense layers back up to the image, or dense -> feature map -> stride-2 transposed convolutions
(DCGAN), with batch norm when ``batch_norm`` is set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, GANConfig, TrainConfig
from ..optim import make_optimizer
from .base import PLAIN, Model, Output, Update
from .conv import transpose_padding
from .layers import Dropout, activation

PREVIEW_SEED = 1234    # the fixed noise of the live sample grid
PREVIEW_SAMPLES = 32


def halved_sizes(size: int, steps: int) -> list[int]:
    """Spatial sizes after each stride-2 'same' convolution (ceil), starting with the input size."""
    sizes = [size]
    for _ in range(steps):
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def _keras_batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)   # Keras's defaults (momentum 0.99)


def dense_generator(cfg: GANConfig, image_shape: tuple[int, int, int]) -> nn.Sequential:
    """z (B, latent) -> pre-activation images (B, C, H, W) through the mirrored hidden sizes."""
    sizes = [cfg.codings, *reversed(cfg.hidden), math.prod(image_shape)]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation(cfg.activation))
            if cfg.batch_norm:
                layers.append(nn.BatchNorm1d(n_out, eps=1e-3, momentum=0.01))
    layers.append(nn.Unflatten(1, image_shape))
    return nn.Sequential(*layers)


def dense_discriminator(cfg: GANConfig, image_shape: tuple[int, int, int]) -> nn.Sequential:
    """x (B, C, H, W) -> one logit (B, 1)."""
    layers: list[nn.Module] = [nn.Flatten()]
    size = math.prod(image_shape)
    for h in cfg.hidden:
        layers += [nn.Linear(size, h), activation(cfg.d_activation)]
        if cfg.d_dropout:
            layers.append(Dropout(cfg.d_dropout))
        size = h
    layers.append(nn.Linear(size, 1))
    return nn.Sequential(*layers)


def conv_generator(cfg: GANConfig, image_shape: tuple[int, int, int]) -> nn.Sequential:
    """z (B, latent) -> dense -> (channels[-1], h, w) -> [BN] -> transposed convs, stride 2 -> (B, C, H, W)."""
    c, h, w = image_shape
    hs, ws = halved_sizes(h, len(cfg.channels)), halved_sizes(w, len(cfg.channels))
    fmap = (cfg.channels[-1], hs[-1], ws[-1])
    layers: list[nn.Module] = [nn.Linear(cfg.codings, math.prod(fmap)), nn.Unflatten(1, fmap)]
    if cfg.batch_norm:
        layers.append(_keras_batch_norm(fmap[0]))
    ins, outs = list(reversed(cfg.channels)), [*reversed(cfg.channels[:-1]), c]
    for i, (n_in, n_out) in enumerate(zip(ins, outs)):
        step = len(cfg.channels) - i
        ph, oph = transpose_padding(hs[step], hs[step - 1], cfg.kernel_size)
        pw, opw = transpose_padding(ws[step], ws[step - 1], cfg.kernel_size)
        layers.append(nn.ConvTranspose2d(n_in, n_out, cfg.kernel_size, stride=2, padding=(ph, pw),
                                         output_padding=(oph, opw)))
        if i < len(outs) - 1:
            layers.append(activation(cfg.activation))
            if cfg.batch_norm:
                layers.append(_keras_batch_norm(n_out))
    return nn.Sequential(*layers)


def conv_discriminator(cfg: GANConfig, image_shape: tuple[int, int, int]) -> nn.Sequential:
    """x (B, C, H, W) -> stride-2 'same' convs [-> dropout] -> one logit (B, 1)."""
    c, h, w = image_shape
    hs, ws = halved_sizes(h, len(cfg.channels)), halved_sizes(w, len(cfg.channels))
    layers: list[nn.Module] = []
    for out in cfg.channels:
        layers += [nn.Conv2d(c, out, cfg.kernel_size, stride=2, padding=cfg.kernel_size // 2),
                   activation(cfg.d_activation)]
        if cfg.d_dropout:
            layers.append(Dropout(cfg.d_dropout))
        c = out
    layers += [nn.Flatten(), nn.Linear(c * hs[-1] * ws[-1], 1)]
    return nn.Sequential(*layers)


@dataclass
class GANSteps:
    """What a GAN's training step needs: its two optimisers and how to alternate them."""
    generator: torch.optim.Optimizer
    discriminator: torch.optim.Optimizer
    d_steps: int                  # discriminator updates per generator update
    label_smoothing: float        # real images are labelled 1 - label_smoothing for the discriminator


class GAN(Model):
    """generator(z) -> images, discriminator(x) -> logit of "real"; x is (B, C, H, W) in [0, 1].

    With ``output='tanh'`` the networks work on images scaled to [-1, 1] (DCGAN), and everything
    that leaves the model (samples, previews) is mapped back to [0, 1].
    """
    def __init__(self, cfg: GANConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        self.cfg, self.image_shape, self.latent_dim = cfg, tuple(image_shape), cfg.codings
        if cfg.arch == "conv":
            c, h, w = self.image_shape
            if min(h, w) < 2 ** len(cfg.channels):
                raise ConfigError("model.channels: {n_channels} stride-2 layers are too many for {h}x{w} images",
                                  n_channels=len(cfg.channels), h=h, w=w)
            self.generator, self.discriminator = conv_generator(cfg, image_shape), conv_discriminator(cfg, image_shape)
            self.to(memory_format=torch.channels_last)
        else:
            self.generator = dense_generator(cfg, image_shape)
            self.discriminator = dense_discriminator(cfg, image_shape)

    # ------------------------------------------------------------------------------ scaling
    def _to_model_scale(self, x01: torch.Tensor) -> torch.Tensor:
        return x01 * 2 - 1 if self.cfg.output == "tanh" else x01

    def _squash(self, pre: torch.Tensor) -> torch.Tensor:
        """Generator pre-activations -> images in the model's scale."""
        return torch.tanh(pre) if self.cfg.output == "tanh" else torch.sigmoid(pre)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """codes (B, latent) -> images (B, C, H, W) in the model's scale ([-1, 1] for tanh)."""
        return self._squash(self.generator(z))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """codes (B, latent) -> logits whose sigmoid is the image in [0, 1] (the autoencoders' convention)."""
        return self._as_logits(self.generator(z))

    def _as_logits(self, pre: torch.Tensor) -> torch.Tensor:
        return 2 * pre if self.cfg.output == "tanh" else pre   # (tanh(a) + 1) / 2 == sigmoid(2a)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """images in the model's scale (B, C, H, W) -> logits (B,) of "real"."""
        return self._discriminate_with(self.discriminator, x)

    def noise(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes (n, codings) drawn from N(0, I)."""
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    # ------------------------------------------------------------------------------ losses
    @staticmethod
    def _d_terms(logit_real: torch.Tensor, logit_fake: torch.Tensor, smoothing: float) -> dict[str, torch.Tensor]:
        """The discriminator's loss and accuracies from its logits on real and fake images."""
        loss_real = F.binary_cross_entropy_with_logits(logit_real, torch.full_like(logit_real, 1 - smoothing))
        loss_fake = F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
        return {"d_loss": (loss_real + loss_fake) / 2,   # the book's mean over the concatenated batch
                "acc_real": (logit_real > 0).float().mean(), "acc_fake": (logit_fake < 0).float().mean()}

    @staticmethod
    def _g_loss(logit_fake: torch.Tensor) -> torch.Tensor:
        """The generator's loss: fakes should be called real (the non-saturating loss)."""
        return F.binary_cross_entropy_with_logits(logit_fake, torch.ones_like(logit_fake))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, rng: torch.Generator | None = None) -> Output:
        """Both losses on real images ``x`` and as many fakes, without updating (validation)."""
        z = self.noise(len(x), x.device, rng)
        pre = self.generator(z)
        logit_fake = self.discriminate(self._squash(pre))
        terms = self._d_terms(self.discriminate(self._to_model_scale(x)), logit_fake, 0.0)
        terms["g_loss"] = self._g_loss(logit_fake)
        return Output(terms["d_loss"] + terms["g_loss"], terms, self._as_logits(pre), z)

    # ---------------------------------------------------------------------------- training
    def configure_optimizers(self, cfg: TrainConfig) -> "GANSteps":
        """Both optimisers (the discriminator's may have its own kind and rate) and the step options."""
        return GANSteps(make_optimizer(self.generator.parameters(), cfg),
                        make_optimizer(self.discriminator.parameters(), cfg.discriminator()),
                        cfg.d_steps, cfg.label_smoothing)

    def step_networks(self) -> dict[str, nn.Module]:
        """The generator and the discriminator step in turn, each through its own wrapper when distributed."""
        return {"generator": self.generator, "discriminator": self.discriminator}

    def _discriminate_with(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """:meth:`discriminate` through ``net`` (the discriminator or its distributed wrapper)."""
        if self.cfg.arch == "conv":
            x = x.contiguous(memory_format=torch.channels_last)
        return net(x)[:, 0]

    def training_step(self, x: torch.Tensor, y: torch.Tensor | None, optimizers: "GANSteps",
                      rng: torch.Generator | None = None, update: Update = PLAIN) -> Output:
        """``d_steps`` discriminator updates on (fresh fakes, real batch) in one pass of twice the batch, as the
        book's ``train_on_batch`` on their concatenation, then one generator update through the frozen
        discriminator. ``update`` says how gradients are made and applied (distributed share, mixed precision)."""
        opt_g, opt_d = optimizers.generator, optimizers.discriminator
        real, n = self._to_model_scale(x), len(x)
        for _ in range(optimizers.d_steps):
            with update.forward():
                with torch.no_grad():
                    fake = self.generate(self.noise(n, x.device, rng))
                logits = self._discriminate_with(self.stepped("discriminator"), torch.cat([fake, real]))
                terms = self._d_terms(logits[n:], logits[:n], optimizers.label_smoothing)
            opt_d.zero_grad(set_to_none=True)
            update.backward(terms["d_loss"])
            update.step(opt_d)
        # the generator step needs gradients w.r.t. the images only; the discriminator is called directly, as
        # only the generator's gradients are all-reduced in this step
        self.discriminator.requires_grad_(False)
        try:
            z = self.noise(n, x.device, rng)
            with update.forward():
                fake = self._squash(self.stepped("generator")(z))
                g_loss = self._g_loss(self._discriminate_with(self.discriminator, fake))
            opt_g.zero_grad(set_to_none=True)
            update.backward(g_loss)
            update.step(opt_g)
        finally:
            self.discriminator.requires_grad_(True)
        terms = {k: v.detach() for k, v in terms.items()}
        terms["g_loss"] = g_loss.detach()
        return Output(terms["d_loss"] + terms["g_loss"], terms, None, z)

    # ---------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] generated from z ~ N(0, temperature^2 I)."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        z = temperature * self.noise(n, device, generator)
        images = torch.sigmoid(self.decode(z))
        self.train(was_training)
        return images

    @torch.no_grad()
    def preview(self, x: torch.Tensor) -> torch.Tensor:
        """The same ``PREVIEW_SAMPLES`` noise vectors every epoch: watch them turn into garments."""
        device = next(self.parameters()).device
        return self.sample(PREVIEW_SAMPLES, generator=torch.Generator(device).manual_seed(PREVIEW_SEED))
