"""The book's recipes (Hands-On Machine Learning, 2nd ed., ch. 17) as named presets.

All on Fashion-MNIST with validation split 0.1 and batch 32 unless said otherwise.
"""
from __future__ import annotations

from dataclasses import replace

from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig

_STACKED = ModelConfig(arch="dense", hidden=(100,), latent=30, activation="selu")
_SPARSE = ModelConfig(arch="dense", hidden=(100,), latent=300, activation="selu", code_activation="sigmoid")

PRESETS: dict[str, tuple[str, ModelConfig, TrainConfig]] = {
    "stacked": ("Stacked AE 784-100-30 SELU, the chapter's first recipe",
                _STACKED, TrainConfig(optimizer="sgd", lr=1.5, epochs=10)),
    "tied": ("Stacked AE whose decoder reuses the transposed encoder weights",
             replace(_STACKED, tied=True), TrainConfig(optimizer="sgd", lr=1.5, epochs=10)),
    "denoising-gaussian": ("Denoising AE: Gaussian noise sigma 0.2 on the input",
                           replace(_STACKED, noise="gaussian", noise_level=0.2),
                           TrainConfig(optimizer="sgd", lr=1.0, epochs=10)),
    "denoising-dropout": ("Denoising AE: dropout 0.5 on the input",
                          replace(_STACKED, noise="dropout", noise_level=0.5),
                          TrainConfig(optimizer="sgd", lr=1.0, epochs=10)),
    "sparse-l1": ("Sparse AE: 300 sigmoid codes with an L1 activity penalty",
                  replace(_SPARSE, sparsity="l1", sparsity_weight=1e-3),
                  TrainConfig(optimizer="sgd", lr=1.0, epochs=10)),
    # The book's weight is 0.05 on a Keras activity regulariser, which Keras divides by the batch size
    # (32); AE Lab's KL penalty is per batch, so the same recipe is 0.05 / 32.
    "sparse-kl": ("Sparse AE: 300 sigmoid codes pulled to a 10% activation rate (KL)",
                  replace(_SPARSE, sparsity="kl", sparsity_weight=0.05 / 32, sparsity_target=0.1),
                  TrainConfig(optimizer="sgd", lr=1.0, epochs=10)),
    "conv": ("Convolutional AE 16-32-64 with max-pooling, transposed-conv decoder",
             ModelConfig(arch="conv", channels=(16, 32, 64), kernel_size=3, latent=0, activation="selu"),
             TrainConfig(optimizer="sgd", lr=1.0, epochs=5)),
    "vae": ("Variational AE 784-150-100 -> 10-D Gaussian codes, sampling from the prior",
            ModelConfig(arch="dense", hidden=(150, 100), latent=10, activation="selu", code_activation="linear",
                        variational=True, beta=1.0),
            TrainConfig(optimizer="rmsprop", lr=1e-3, rho=0.9, batch_size=128, epochs=25)),
    # The book trains its simple GAN for 1 epoch and its DCGAN for 50; these defaults give recognisable
    # samples in about a minute (gan) and a few minutes (dcgan) on a laptop CPU.
    "gan": ("Simple GAN: generator 30 -> 100 -> 150 -> 784, discriminator 784 -> 150 -> 100 -> 1 (SELU)",
            ModelConfig(family="gan", arch="dense", hidden=(150, 100), latent=30, activation="selu",
                        d_activation="selu", output="sigmoid"),
            TrainConfig(optimizer="rmsprop", lr=1e-3, rho=0.9, batch_size=32, epochs=10)),
    "dcgan": ("DCGAN: dense -> 7x7x128 -> transposed convs 64 -> 1 with batch norm; conv 64 -> 128 discriminator",
              ModelConfig(family="gan", arch="conv", channels=(64, 128), kernel_size=5, latent=100,
                          activation="selu", d_activation="leaky_relu", d_dropout=0.4, batch_norm=True,
                          output="tanh"),
              TrainConfig(optimizer="rmsprop", lr=1e-3, rho=0.9, batch_size=32, epochs=3)),
    # Not from the book: the feature extractor of the quality measure (a Fréchet distance on its features).
    "classifier": ("Domain classifier for the quality measure: conv 32 -> 64, 128 features, 10 classes",
                   ModelConfig(family="classifier", arch="conv", channels=(32, 64), kernel_size=3, latent=128,
                               activation="relu", d_dropout=0.3),
                   TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, epochs=5)),
}

# The book's reported validation loss after its epoch count, where it gives one.
BOOK_VAL_LOSS = {"stacked": 0.2874}


def preset(name: str, data: str = "fashion-mnist") -> RunConfig:
    """A fresh RunConfig for preset ``name`` on data set ``data``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    _, model, train = PRESETS[name]
    return RunConfig(DataConfig(name=data), replace(model), replace(train), preset=name)
