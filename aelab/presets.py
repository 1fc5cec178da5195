"""The book's recipes (Hands-On Machine Learning, 2nd ed., ch. 17) as named presets, and how a config
differs from its preset (the one formatter behind share links, CLI lines and Python snippets).

All on Fashion-MNIST with validation split 0.1 and batch 32 unless said otherwise.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from .config import (
    AutoencoderConfig,
    ClassifierConfig,
    ConfigError,
    DataConfig,
    GANConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    format_value,
    switch_family,
)
from .i18n import N_

_STACKED = AutoencoderConfig(arch="dense", hidden=(100,), latent=30, activation="selu")
_SPARSE = AutoencoderConfig(arch="dense", hidden=(100,), latent=300, activation="selu", code_activation="sigmoid")

PRESETS: dict[str, tuple[str, ModelConfig, TrainConfig]] = {
    "stacked": (N_("Stacked AE 784-100-30 SELU, the chapter's first recipe"),
                _STACKED, TrainConfig(optimizer="sgd", lr=1.5, epochs=10)),
    # The book's "training one autoencoder at a time": 784-100-784 on the images (BCE, SGD 1.5), then 100-30-100
    # on their codes (MSE, SGD 0.05), 10 epochs each, then the stacked autoencoder at 0.1 for 10 more.
    "stacked-greedy": (N_("Stacked AE trained one autoencoder at a time (greedy layer-wise), then fine-tuned"),
                       _STACKED, TrainConfig(optimizer="sgd", lr=1.5, epochs=10, greedy=True, inner_lr=0.05,
                                             finetune_epochs=10, finetune_lr=0.1)),
    "tied": (N_("Stacked AE whose decoder reuses the transposed encoder weights"),
             replace(_STACKED, tied=True), TrainConfig(optimizer="sgd", lr=1.5, epochs=10)),
    "denoising-gaussian": (N_("Denoising AE: Gaussian noise sigma 0.2 on the input"),
                           replace(_STACKED, noise="gaussian", noise_level=0.2),
                           TrainConfig(optimizer="sgd", lr=1.0, epochs=10)),
    "denoising-dropout": (N_("Denoising AE: dropout 0.5 on the input"),
                          replace(_STACKED, noise="dropout", noise_level=0.5),
                          TrainConfig(optimizer="sgd", lr=1.0, epochs=10)),
    "sparse-l1": (N_("Sparse AE: 300 sigmoid codes with an L1 activity penalty"),
                  replace(_SPARSE, sparsity="l1", sparsity_weight=1e-3),
                  TrainConfig(optimizer="sgd", lr=1.0, epochs=10)),
    # The book's weight is 0.05 on a Keras activity regulariser, which Keras divides by the batch size
    # (32); AE Lab's KL penalty is per batch, so the same recipe is 0.05 / 32.
    "sparse-kl": (N_("Sparse AE: 300 sigmoid codes pulled to a 10% activation rate (KL)"),
                  replace(_SPARSE, sparsity="kl", sparsity_weight=0.05 / 32, sparsity_target=0.1),
                  TrainConfig(optimizer="sgd", lr=1.0, epochs=10)),
    # The book's 3-D demo uses this shape (3 -> 2 -> 3, SGD 1.5); on images, SGD at that rate diverges on the
    # MSE of 784 unbounded outputs, so the image recipe uses Adam.
    "linear": (N_("Linear AE 784 -> 30 -> 784, no activations, linear output, MSE: it learns PCA's subspace"),
               AutoencoderConfig(arch="dense", hidden=(), latent=30, activation="linear", code_activation="linear",
                                 output="linear", loss="mse"),
               TrainConfig(optimizer="adam", lr=1e-3, epochs=10)),
    "recurrent": (N_("Recurrent AE: LSTM 100 -> LSTM 30 reads the rows; the code repeated, LSTM 100, a dense row out"),
                  AutoencoderConfig(arch="rnn", hidden=(100,), latent=30, activation="tanh"),
                  TrainConfig(optimizer="sgd", lr=0.1, epochs=10)),
    "hashing": (N_("Semantic hashing: Gaussian noise sigma 15 before 16 sigmoid codes, so they become bits"),
                replace(_STACKED, latent=16, code_activation="sigmoid", code_noise=15.0),
                TrainConfig(optimizer="sgd", lr=1.0, epochs=10)),
    "conv": (N_("Convolutional AE 16-32-64 with max-pooling, transposed-conv decoder"),
             AutoencoderConfig(arch="conv", channels=(16, 32, 64), kernel_size=3, latent=0, activation="selu"),
             TrainConfig(optimizer="sgd", lr=1.0, epochs=5)),
    "vae": (N_("Variational AE 784-150-100 -> 10-D Gaussian codes, sampling from the prior"),
            AutoencoderConfig(arch="dense", hidden=(150, 100), latent=10, activation="selu", code_activation="linear",
                              variational=True, beta=1.0),
            TrainConfig(optimizer="rmsprop", lr=1e-3, rho=0.9, batch_size=128, epochs=25)),
    # The book trains its simple GAN for 1 epoch and its DCGAN for 50; these defaults give recognisable
    # samples in about a minute (gan) and a few minutes (dcgan) on a laptop CPU.
    "gan": (N_("Simple GAN: generator 30 -> 100 -> 150 -> 784, discriminator 784 -> 150 -> 100 -> 1 (SELU)"),
            GANConfig(arch="dense", hidden=(150, 100), codings=30, activation="selu", d_activation="selu",
                      output="sigmoid"),
            TrainConfig(optimizer="rmsprop", lr=1e-3, rho=0.9, batch_size=32, epochs=10)),
    "dcgan": (N_("DCGAN: dense -> 7x7x128 -> transposed convs 64 -> 1 with batch norm; conv 64 -> 128 discriminator"),
              GANConfig(arch="conv", channels=(64, 128), kernel_size=5, codings=100, activation="selu",
                        d_activation="leaky_relu", d_dropout=0.4, batch_norm=True, output="tanh"),
              TrainConfig(optimizer="rmsprop", lr=1e-3, rho=0.9, batch_size=32, epochs=3)),
    # Not from the book: the feature extractor of the quality measure (a Fréchet distance on its features).
    "classifier": (N_("Domain classifier for the quality measure: conv 32 -> 64, 128 features, 10 classes"),
                   ClassifierConfig(arch="conv", channels=(32, 64), kernel_size=3, features=128, activation="relu",
                                    dropout=0.3),
                   TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, epochs=5)),
}

# The book's reported validation loss after its epoch count, where it gives one.
BOOK_VAL_LOSS = {"stacked": 0.2874}
# Keys of an app address that are not settings: the recipe, the data set, the language, a run to open, a
# view of the latent page. They never reach with_overrides, and a page that rewrites its address keeps them.
RESERVED_QUERY_KEYS = ("preset", "data", "lang", "run", "method", "dims", "n")


def preset(name: str, data: str = "fashion-mnist") -> RunConfig:
    """A fresh RunConfig for preset ``name`` on data set ``data``."""
    if name not in PRESETS:
        raise ConfigError("unknown preset {name!r}; choose one of {names}", name=name, names=", ".join(PRESETS))
    _, model, train = PRESETS[name]
    return RunConfig(DataConfig(name=data), copy.deepcopy(model), replace(train), preset=name)


def start_of(cfg: RunConfig) -> RunConfig:
    """What ``cfg`` starts from: its preset on its data set, or the defaults when it has none."""
    return preset(cfg.preset, cfg.data.name) if cfg.preset in PRESETS else RunConfig(DataConfig(name=cfg.data.name))


def differences(cfg: RunConfig) -> dict[str, Any]:
    """{setting: value} of what ``cfg`` changes on :func:`start_of` it: ``family`` first when it differs, then
    every field whose value differs from that family's (the data set name is not a difference).

    The one source of share links, CLI lines and Python snippets:
    ``with_overrides(start_of(cfg), differences(cfg)) == cfg``."""
    start = start_of(cfg)
    out: dict[str, Any] = {}
    if start.model.family != cfg.model.family:
        out["family"] = cfg.model.family
        start.model = switch_family(start.model, cfg.model.family)
    for section in ("data", "model", "train"):
        obj, reference = getattr(cfg, section), getattr(start, section)
        for name in vars(obj):
            if (section, name) != ("data", "name") and getattr(obj, name) != getattr(reference, name):
                out[name] = getattr(obj, name)
    return out


def command_line(cfg: RunConfig, data: str | None = None) -> str:
    """The ``python -m aelab train ...`` line that reproduces ``cfg`` (``data`` names the data set instead
    of ``cfg.data.name``, e.g. a file's name where its server path must not show)."""
    parts = ["python -m aelab train"] + ([f"--preset {cfg.preset}"] if cfg.preset in PRESETS else [])
    parts.append(f"--data {data or cfg.data.name}")
    for name, value in differences(cfg).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            parts.append(f"{flag} {format_value(value)}")
    return " ".join(parts)


def share_params(cfg: RunConfig, data: str | None = None) -> dict[str, str]:
    """Query parameters of a share link: the recipe ('custom' when none), the data set (``data`` in its
    place, as for :func:`command_line`) and the differences."""
    return {"preset": cfg.preset if cfg.preset in PRESETS else "custom", "data": data or cfg.data.name,
            **{name: format_value(value) for name, value in differences(cfg).items()}}


def python_snippet(cfg: RunConfig, data: str | None = None) -> str:
    """Python that reproduces ``cfg`` and trains it (``data`` as for :func:`command_line`)."""
    data = data or cfg.data.name
    start = (f"aelab.preset({cfg.preset!r}, data={data!r})" if cfg.preset in PRESETS else
             f"aelab.RunConfig(aelab.DataConfig(name={data!r}))")
    changes = differences(cfg)
    lines = ["import aelab", f"cfg = {start}"]
    if changes:
        lines.append(f"cfg = aelab.with_overrides(cfg, {changes!r})")
    lines.append("exp = aelab.train(cfg, runs_dir='runs')")
    return "\n".join(lines)
