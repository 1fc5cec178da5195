"""Typed configuration for data, model and training, validated at the edge.

Every run is described by one :class:`RunConfig` (data + model + train). Configs round-trip
through plain dicts (JSON files, URL query parameters, CLI flags) with :func:`from_dict`, which
rejects unknown keys and wrong types with a message that names the field.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

ACTIVATIONS = ("selu", "relu", "elu", "gelu", "leaky_relu", "tanh", "sigmoid", "linear")
ARCHITECTURES = ("dense", "conv")
FAMILIES = ("autoencoder", "gan", "classifier")
OUTPUTS = ("sigmoid", "tanh")
NOISES = ("none", "gaussian", "dropout")
SPARSITIES = ("none", "l1", "kl")
LOSSES = ("bce", "mse")
OPTIMIZERS = ("sgd", "adam", "nadam", "rmsprop")
D_OPTIMIZERS = ("same", *OPTIMIZERS)
DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which field and what is allowed."""


@dataclass
class DataConfig:
    name: str = "fashion-mnist"      # data set name (see aelab.data.DATASETS) or a file path
    validation_split: float = 0.1    # last fraction of the training set, unshuffled (as Keras)
    data_dir: str | None = None      # where IDX files live; default $AELAB_DATA_DIR or ~/.cache/aelab
    image_size: int = 28             # your own .zip of images: resized to image_size x image_size

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("data.name: give a data set name, e.g. 'fashion-mnist' or 'digits', or the path "
                              "of an .npz or .zip of your images")
        if not 8 <= self.image_size <= 128:
            raise ConfigError(f"data.image_size must be between 8 and 128, got {self.image_size}")
        if not 0.0 < self.validation_split < 1.0:
            raise ConfigError(f"data.validation_split must be in (0, 1), got {self.validation_split}")


@dataclass
class ModelConfig:
    family: str = "autoencoder"                # autoencoder | gan | classifier (the domain classifier of the FID)
    arch: str = "dense"                        # dense | conv
    hidden: tuple[int, ...] = (100,)           # dense: encoder hidden sizes (decoder mirrors them)
    latent: int = 30                           # code size; conv: 0 = the last feature map is the code
    activation: str = "selu"                   # hidden layers
    code_activation: str = "same"              # code layer: 'same' as hidden, or any activation
    tied: bool = False                         # dense: decoder uses transposed encoder weights
    channels: tuple[int, ...] = (16, 32, 64)   # conv: encoder channels, each followed by 2x2 pooling
    kernel_size: int = 3                       # conv: square kernel, 'same' padding
    noise: str = "none"                        # denoising corruption of the input: none | gaussian | dropout
    noise_level: float = 0.0                   # gaussian sigma or dropout rate
    sparsity: str = "none"                     # none | l1 (activity penalty) | kl (to a target rate)
    sparsity_weight: float = 0.0
    sparsity_target: float = 0.1               # kl: target mean activation of each code unit
    variational: bool = False                  # Gaussian posterior + KL to N(0, I)
    beta: float = 1.0                          # weight of the KL term (per image, before /pixels)
    loss: str = "bce"                          # reconstruction loss: bce | mse (mean per pixel)
    # GAN: `latent` is the codings size; the discriminator is the encoder-like stack (hidden sizes, or
    # channels as stride-2 convs) and the generator mirrors it. Classifier: the encoder trunk, a dense
    # feature layer of size `latent` (the features of the FID), dropout `d_dropout`, then the class logits.
    d_activation: str = "leaky_relu"           # gan: the discriminator's hidden activation
    d_dropout: float = 0.0                     # gan: dropout after each discriminator layer; classifier: before the head
    batch_norm: bool = False                   # gan: batch norm in the generator (DCGAN)
    output: str = "sigmoid"                    # gan: generator output; tanh = images scaled to [-1, 1]

    @property
    def generative(self) -> bool:
        """Whether the model can draw new images (a GAN, or a VAE from its prior)."""
        return self.family == "gan" or (self.family == "autoencoder" and self.variational)

    def validate(self) -> None:
        _choice("model.family", self.family, FAMILIES)
        _choice("model.arch", self.arch, ARCHITECTURES)
        _choice("model.d_activation", self.d_activation, ACTIVATIONS)
        _choice("model.output", self.output, OUTPUTS)
        if not 0 <= self.d_dropout < 1:
            raise ConfigError(f"model.d_dropout must be in [0, 1), got {self.d_dropout}")
        if self.family != "autoencoder":
            for name, default in (("noise", "none"), ("sparsity", "none"), ("variational", False), ("tied", False)):
                if getattr(self, name) != default:
                    raise ConfigError(f"model.{name}: autoencoder objectives do not apply to a {self.family}; "
                                      f"set it to {default!r}")
            if self.latent <= 0 and self.family == "gan":
                raise ConfigError(f"model.latent: a GAN needs a codings size > 0, got {self.latent}")
        _choice("model.activation", self.activation, ACTIVATIONS)
        _choice("model.code_activation", self.code_activation, ACTIVATIONS + ("same",))
        _choice("model.noise", self.noise, NOISES)
        _choice("model.sparsity", self.sparsity, SPARSITIES)
        _choice("model.loss", self.loss, LOSSES)
        if self.arch == "dense":
            if any(h <= 0 for h in self.hidden):
                raise ConfigError(f"model.hidden: every layer size must be positive, got {list(self.hidden)}")
            if self.latent <= 0:
                raise ConfigError(f"model.latent must be a positive code size, got {self.latent}")
        else:
            if not self.channels or any(c <= 0 for c in self.channels):
                raise ConfigError(f"model.channels: give positive channel counts, got {list(self.channels)}")
            if self.kernel_size < 3 or self.kernel_size % 2 == 0:
                raise ConfigError(f"model.kernel_size must be odd and >= 3, got {self.kernel_size}")
            if self.latent < 0:
                raise ConfigError(f"model.latent must be >= 0 (0 = feature-map code), got {self.latent}")
            if self.tied:
                raise ConfigError("model.tied is only available for the dense architecture")
        if self.noise == "gaussian" and not self.noise_level > 0:
            raise ConfigError(f"model.noise_level: gaussian noise needs sigma > 0, got {self.noise_level}")
        if self.noise == "dropout" and not 0 < self.noise_level < 1:
            raise ConfigError(f"model.noise_level: dropout needs a rate in (0, 1), got {self.noise_level}")
        if self.sparsity != "none" and not self.sparsity_weight > 0:
            raise ConfigError(f"model.sparsity_weight must be > 0 with {self.sparsity} sparsity")
        if self.sparsity == "kl":
            if not 0 < self.sparsity_target < 1:
                raise ConfigError(f"model.sparsity_target must be in (0, 1), got {self.sparsity_target}")
            if self.code_activation != "sigmoid":
                raise ConfigError("model.code_activation must be 'sigmoid' for KL sparsity "
                                  "(the KL compares mean activations in (0, 1) with the target rate)")
        if self.variational:
            if self.beta < 0:
                raise ConfigError(f"model.beta must be >= 0, got {self.beta}")
            if self.arch == "conv" and self.latent == 0:
                raise ConfigError("model.latent: a variational conv model needs a dense code size > 0")
            if self.tied:
                raise ConfigError("model.tied is not available for variational models")
            if self.sparsity != "none":
                raise ConfigError("model.sparsity cannot be combined with variational=True "
                                  "(the KL to N(0, I) already regularises the code)")


@dataclass
class TrainConfig:
    optimizer: str = "sgd"          # sgd | adam | nadam | rmsprop (Keras default epsilons)
    lr: float = 1.5
    momentum: float = 0.0           # sgd: momentum; rmsprop: momentum
    nesterov: bool = False          # sgd only
    rho: float = 0.9                # rmsprop: decay of the squared-gradient average (Keras default)
    batch_size: int = 32
    epochs: int = 10
    seed: int = 42
    device: str = "auto"            # auto (cuda, then mps, then cpu) | cpu | cuda | mps
    # GAN: optimizer/lr/momentum/rho above are the generator's; the discriminator's may differ
    d_optimizer: str = "same"       # gan: discriminator optimizer, 'same' as the generator's
    d_lr: float = 0.0               # gan: discriminator learning rate, 0 = same as lr
    d_steps: int = 1                # gan: discriminator steps per generator step
    label_smoothing: float = 0.0    # gan: real images are labelled 1 - label_smoothing for the discriminator

    def validate(self) -> None:
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _choice("train.d_optimizer", self.d_optimizer, D_OPTIMIZERS)
        if self.d_lr < 0:
            raise ConfigError(f"train.d_lr must be >= 0 (0 = same as lr), got {self.d_lr}")
        if not 1 <= self.d_steps <= 10:
            raise ConfigError(f"train.d_steps must be between 1 and 10, got {self.d_steps}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"train.label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        _choice("train.device", self.device, DEVICES)
        if not self.lr > 0:
            raise ConfigError(f"train.lr: the learning rate must be > 0, got {self.lr}")
        if self.momentum < 0 or self.momentum >= 1:
            raise ConfigError(f"train.momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("train.nesterov needs optimizer 'sgd' with momentum > 0")
        if not 0 < self.rho < 1:
            raise ConfigError(f"train.rho must be in (0, 1), got {self.rho}")
        if self.batch_size <= 0:
            raise ConfigError(f"train.batch_size must be positive, got {self.batch_size}")
        if self.epochs <= 0:
            raise ConfigError(f"train.epochs must be positive, got {self.epochs}")


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None        # the recipe this config started from, if any

    def validate(self) -> "RunConfig":
        self.data.validate()
        self.model.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        return from_dict(cls, d)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: unknown value {value!r}; choose one of {', '.join(allowed)}")


def from_dict(cls, d: dict[str, Any], prefix: str = ""):
    """Build dataclass ``cls`` from a dict, converting JSON lists to tuples and checking types."""
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix or 'config'}: expected an object, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"{prefix or 'config'}: unknown field(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in d.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where + ".")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _coerce(hint, value, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, where) for v in value)
    return parse_scalar(hint, value, where)


def parse_scalar(hint, value, where: str):
    """Convert ``value`` (possibly a string from a URL or a flag) to ``hint`` (bool, int, float, str)."""
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    raise ConfigError(f"{where}: unsupported type {hint}")


def flat_fields() -> list[tuple[str, str, type, Any]]:
    """(section, field, type, default) for every leaf field of RunConfig, for CLI flags and URLs."""
    out = []
    for section_cls, section in ((DataConfig, "data"), (ModelConfig, "model"), (TrainConfig, "train")):
        hints = typing.get_type_hints(section_cls)
        for f in fields(section_cls):
            out.append((section, f.name, hints[f.name], getattr(section_cls(), f.name)))
    return out


def with_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a copy of ``cfg`` with ``{"section.field": value}`` (or bare field names) replaced."""
    sections = {"data": cfg.data, "model": cfg.model, "train": cfg.train}
    index = {name: section for section, name, _, _ in flat_fields()}
    new = {k: replace(v) for k, v in sections.items()}
    preset = cfg.preset
    for key, value in overrides.items():
        if key == "preset":
            preset = value
            continue
        section, _, name = key.rpartition(".")
        section = section or index.get(name)
        if section not in new or not hasattr(new[section], name):
            raise ConfigError(f"unknown setting {key!r}")
        hint = typing.get_type_hints(type(new[section]))[name]
        setattr(new[section], name, _coerce(hint, value, f"{section}.{name}"))
    return RunConfig(new["data"], new["model"], new["train"], preset)
