"""Convolutional encoder trunk (conv + 2x2 max-pooling) and transposed-conv decoder, any image size."""
from __future__ import annotations

from torch import nn

from ..config import AutoencoderConfig, ConfigError, ModelConfig
from .layers import activation


def pooled_sizes(size: int, steps: int) -> list[int]:
    """Spatial sizes after each 2x2 max-pooling (floor), starting with the input size."""
    sizes = [size]
    for _ in range(steps):
        sizes.append(sizes[-1] // 2)
    return sizes


def conv_trunk(cfg: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Sequential, int]:
    """x (B, C, H, W) -> flattened feature map (B, channels[-1] * h * w)."""
    c, h, w = image_shape
    hs, ws = pooled_sizes(h, len(cfg.channels)), pooled_sizes(w, len(cfg.channels))
    if hs[-1] < 1 or ws[-1] < 1:
        raise ConfigError("model.channels: {n_channels} pooling steps shrink a {h}x{w} image to nothing; use at most "
                          "{most} conv layers",
                          n_channels=len(cfg.channels), h=h, w=w, most=max(0, min(h, w).bit_length() - 1))
    layers: list[nn.Module] = []
    for out in cfg.channels:
        layers += [nn.Conv2d(c, out, cfg.kernel_size, padding="same"), activation(cfg.activation), nn.MaxPool2d(2)]
        c = out
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), c * hs[-1] * ws[-1]


def transpose_padding(n_in: int, n_out: int, k: int) -> tuple[int, int]:
    """(padding, output_padding) so that a stride-2 transposed conv maps n_in -> n_out.

    out = 2 (n_in - 1) - 2 p + k + op; for k=3 an odd target gives Keras's 'valid', an even one 'same'.
    """
    excess = 2 * (n_in - 1) + k - n_out
    return (excess + 1) // 2, excess % 2


def conv_decoder(cfg: AutoencoderConfig, image_shape: tuple[int, int, int], latent: int) -> nn.Sequential:
    """z (B, latent) -> logits (B, C, H, W): [dense ->] unflatten -> transposed convs, stride 2."""
    c, h, w = image_shape
    hs, ws = pooled_sizes(h, len(cfg.channels)), pooled_sizes(w, len(cfg.channels))
    fmap = (cfg.channels[-1], hs[-1], ws[-1])
    layers: list[nn.Module] = []
    if cfg.latent:  # a dense code layer sits between the feature map and the code
        layers += [nn.Linear(latent, fmap[0] * fmap[1] * fmap[2]), activation(cfg.activation)]
    layers.append(nn.Unflatten(1, fmap))
    outs = [*reversed(cfg.channels[:-1]), c]
    ins = list(reversed(cfg.channels))
    for i, (n_in, n_out) in enumerate(zip(ins, outs)):
        step = len(cfg.channels) - i  # from size index `step` back to `step - 1`
        ph, oph = transpose_padding(hs[step], hs[step - 1], cfg.kernel_size)
        pw, opw = transpose_padding(ws[step], ws[step - 1], cfg.kernel_size)
        layers.append(nn.ConvTranspose2d(n_in, n_out, cfg.kernel_size, stride=2,
                                         padding=(ph, pw), output_padding=(oph, opw)))
        if i < len(outs) - 1:
            layers.append(activation(cfg.activation))
    return nn.Sequential(*layers)
