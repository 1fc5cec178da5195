"""Recurrent encoder and decoder (the book's recurrent autoencoder): an image is a sequence of its rows.

Encoder: rows (B, H, C*W) -> LSTM(hidden[0]) -> ... -> LSTM(latent), whose final state is the code.
Decoder: the code repeated for every row -> LSTM(hidden[-1]) -> ... -> LSTM(hidden[0]) -> a dense layer per
row to C*W logits. Like Keras's LSTM: tanh state, sigmoid gates, Glorot input weights, orthogonal recurrent
weights, zero biases with the forget gate's at 1 (see :func:`keras_lstm_init_`).
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import AutoencoderConfig


def rows(x: torch.Tensor) -> torch.Tensor:
    """Images (B, C, H, W) -> sequences (B, H, C*W): one step per row, its channels side by side."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, h, c * w)


class RecurrentEncoder(nn.Module):
    """x (B, C, H, W) -> the last LSTM's final hidden state (B, latent)."""

    def __init__(self, cfg: AutoencoderConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        c, _, w = image_shape
        sizes = [c * w, *cfg.hidden, cfg.latent]
        self.lstms = nn.ModuleList(nn.LSTM(n_in, n_out, batch_first=True) for n_in, n_out in zip(sizes, sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = rows(x)                            # (B, H, C*W)
        for lstm in self.lstms:
            seq, (h_n, _) = lstm(seq)            # (B, H, size); h_n (1, B, size)
        return h_n[0]                            # (B, latent)


class RecurrentDecoder(nn.Module):
    """z (B, latent) -> logits (B, C, H, W)."""

    def __init__(self, cfg: AutoencoderConfig, image_shape: tuple[int, int, int], latent: int):
        super().__init__()
        self.image_shape = tuple(image_shape)
        c, _, w = image_shape
        sizes = [latent, *reversed(cfg.hidden)]
        self.lstms = nn.ModuleList(nn.LSTM(n_in, n_out, batch_first=True) for n_in, n_out in zip(sizes, sizes[1:]))
        self.to_row = nn.Linear(sizes[-1], c * w)   # the same dense layer on every row (TimeDistributed)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, h, w = self.image_shape
        seq = z.unsqueeze(1).expand(-1, h, -1)   # (B, H, latent): the code at every step (RepeatVector)
        for lstm in self.lstms:
            seq, _ = lstm(seq)                   # (B, H, size)
        out = self.to_row(seq)                   # (B, H, C*W)
        return out.reshape(-1, h, c, w).permute(0, 2, 1, 3)   # (B, C, H, W)


def keras_lstm_init_(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Keras's LSTM defaults for every LSTM in ``module``: Glorot-uniform input weights, orthogonal recurrent
    weights, zero biases except the forget gate's, at 1 (unit_forget_bias). PyTorch's gate order (input,
    forget, cell, output) is Keras's; its two biases add up, so one carries the forget bias."""
    for m in module.modules():
        if isinstance(m, nn.LSTM):
            for name, p in m.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(p, generator=generator)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(p, generator=generator)
                else:
                    nn.init.zeros_(p)
                    if name.startswith("bias_ih"):
                        p.data[m.hidden_size:2 * m.hidden_size] = 1.0
