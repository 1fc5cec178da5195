"""One autoencoder class for every architecture x objective.

Architecture (dense, conv, rnn) supplies an encoder trunk and a decoder; the objective pieces
(denoising corruption, sparsity penalty, Gaussian posterior, noise before the code layer) are options of
this class, so a "denoising sparse conv AE" needs no new code.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import losses
from ..config import AutoencoderConfig
from ..noise import corrupt
from .base import Model, Output
from .conv import conv_decoder, conv_trunk
from .dense import dense_decoder, dense_trunk
from .layers import activation, keras_init_
from .rnn import RecurrentDecoder, RecurrentEncoder, keras_lstm_init_


class Autoencoder(Model):
    """encode(x) -> z, decode(z) -> logits, forward(x) -> Output; x is (B, C, H, W) in [0, 1].

    "Logits" is the decoder's last layer before the output activation: sigmoid (the images are its sigmoid)
    or linear (they are the logits themselves, see :meth:`to_image`)."""
    can_reconstruct = can_encode = True
    # a VAE's KL weight in training is cfg.beta times this, which the trainer sets every step from the β
    # schedule (aelab.train.beta_scale); evaluation always weighs the KL with cfg.beta
    beta_scale = 1.0

    def __init__(self, cfg: AutoencoderConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        self.n_pixels = math.prod(image_shape)

        if cfg.arch == "rnn":   # the last LSTM's final state is the code
            self.trunk, features = RecurrentEncoder(cfg, self.image_shape), cfg.latent
        else:
            build_trunk = dense_trunk if cfg.arch == "dense" else conv_trunk
            self.trunk, features = build_trunk(cfg, self.image_shape)
        self.latent_dim = cfg.latent or features     # conv with latent 0: the feature map is the code
        code_act = cfg.activation if cfg.code_activation == "same" else cfg.code_activation
        if cfg.arch == "rnn":   # the code is the LSTM's tanh state (its own activation only if one is asked for)
            self.to_code = activation("linear" if cfg.code_activation == "same" else code_act)
        elif cfg.variational:
            self.to_mean = nn.Linear(features, self.latent_dim)
            self.to_logvar = nn.Linear(features, self.latent_dim)
        elif cfg.latent:
            self.to_code = nn.Sequential(nn.Linear(features, self.latent_dim), activation(code_act))
        else:  # conv, latent 0: the feature map is the code (its own activation only if one is asked for)
            self.to_code = activation("linear" if cfg.code_activation == "same" else code_act)

        if cfg.arch == "dense":
            tied = None
            if cfg.tied:  # decoder order: code layer first, then the trunk's linears backwards
                trunk_linears = [m for m in self.trunk if isinstance(m, nn.Linear)]
                tied = [self.to_code[0], *reversed(trunk_linears)]
            self.decoder = dense_decoder(cfg, self.image_shape, self.latent_dim, tied)
        elif cfg.arch == "rnn":
            self.decoder = RecurrentDecoder(cfg, self.image_shape, self.latent_dim)
        else:
            self.decoder = conv_decoder(cfg, self.image_shape, self.latent_dim)
            # NHWC is what oneDNN's CPU convolutions want: ~1.7x faster per step here (bench/RESULTS.md)
            self.to(memory_format=torch.channels_last)

    # -------------------------------------------------------------------------------- interface
    @property
    def is_variational(self) -> bool:
        return self.cfg.variational

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar), each (B, latent), of the Gaussian posterior q(z|x). VAE only."""
        h = self._trunk(x)
        return self.to_mean(h), self.to_logvar(h)

    def reset_parameters(self, seed: int) -> None:
        """Keras defaults, LSTMs included (see :func:`aelab.models.rnn.keras_lstm_init_`)."""
        generator = torch.Generator().manual_seed(seed)
        keras_init_(self, generator)
        keras_lstm_init_(self, generator)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.arch == "conv":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.trunk(x)

    def _code(self, h: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """Trunk features -> code; in training, Gaussian ``code_noise`` on the code layer's input first."""
        if self.training and self.cfg.code_noise > 0:
            h = h + self.cfg.code_noise * torch.randn(h.shape, generator=rng, device=h.device, dtype=h.dtype)
        return self.to_code(h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> code (B, latent); the posterior mean for a VAE."""
        if self.cfg.variational:
            return self.posterior(x)[0]
        return self.to_code(self._trunk(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """code (B, latent) -> logits (B, C, H, W)."""
        return self.decoder(z)

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        """The decoder's output activation: sigmoid, or the identity for a linear output (not clipped)."""
        return logits if self.cfg.output == "linear" else torch.sigmoid(logits)

    def to_image(self, logits: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for display and image metrics: the output, clipped for a linear output."""
        return self.output(logits).clamp(0, 1) if self.cfg.output == "linear" else torch.sigmoid(logits)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, rng: torch.Generator | None = None) -> Output:
        """The loss of reconstructing ``x`` (corrupted first in training mode); ``y`` is not used."""
        cfg = self.cfg
        x_in = corrupt(x, cfg.noise, cfg.noise_level, rng) if self.training else x
        terms: dict[str, torch.Tensor] = {}
        if cfg.variational:
            mean, logvar = self.posterior(x_in)
            eps = torch.randn(mean.shape, generator=rng, device=mean.device, dtype=mean.dtype)
            z_sample = mean + torch.exp(0.5 * logvar) * eps   # reparameterisation
            logits = self.decode(z_sample)
            z = mean
        else:
            z = self._code(self._trunk(x_in), rng)
            logits = self.decode(z)

        recon = losses.reconstruction(logits, x, cfg.loss, cfg.output)
        terms["recon"] = recon
        if cfg.loss == "bce":
            terms["rounded_acc"] = losses.rounded_accuracy(x, logits)
        loss = recon
        if cfg.variational:
            kl = losses.kl_to_standard_normal(mean, logvar).mean()
            terms["kl"] = kl
            # KL per image spread over the pixels, so it adds to the per-pixel reconstruction loss
            loss = loss + cfg.beta * (self.beta_scale if self.training else 1.0) * kl / self.n_pixels
            if cfg.loss == "bce":
                terms["nelbo"] = recon * self.n_pixels + kl   # negative ELBO, nats per image
        if cfg.sparsity == "l1":
            terms["sparsity"] = losses.l1_activity(z)
            loss = loss + cfg.sparsity_weight * terms["sparsity"]
        elif cfg.sparsity == "kl":
            terms["sparsity"] = losses.kl_sparsity(z, cfg.sparsity_target)
            loss = loss + cfg.sparsity_weight * terms["sparsity"]
        return Output(loss, terms, logits, z)

    def greedy_phases(self) -> list[Model]:
        """The phases of greedy layer-wise training, outer first (see :mod:`aelab.models.greedy`)."""
        from .greedy import Phase

        return [Phase(self, i) for i in range(len(self.cfg.hidden) + 1)]

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, C, H, W) in [0, 1] decoded from z ~ N(0, temperature^2 I). VAE only."""
        if not self.cfg.variational:
            raise TypeError("sampling from the prior needs a variational model (variational=True)")
        device = next(self.parameters()).device
        z = temperature * torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.to_image(self.decode(z))

    @torch.no_grad()
    def preview(self, x: torch.Tensor) -> torch.Tensor:
        was_training = self.training
        self.eval()
        recon = self.to_image(self.decode(self.encode(x)))
        self.train(was_training)
        return recon
