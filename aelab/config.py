"""Typed configuration for data, model and training, validated once at each entry point.

Every run is described by one :class:`RunConfig` (data + model + train). The model section is one
config per family over a shared base: :class:`AutoencoderConfig`, :class:`GANConfig`,
:class:`ClassifierConfig`, tagged ``family`` in JSON. Configs round-trip through plain dicts (JSON
files, URL query parameters, CLI flags) with :func:`from_dict` and :func:`with_overrides`, which reject
unknown keys and wrong types with a message that names the field. :func:`differences` is the one
formatter of a setting's value; :func:`aelab.presets.differences` says how a config differs from its preset.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .errors import ConfigError
from .i18n import DEFAULT as DEFAULT_LANGUAGE
from .i18n import gettext_for

ACTIVATIONS = ("selu", "relu", "elu", "gelu", "leaky_relu", "tanh", "sigmoid", "linear")
ARCHITECTURES = ("dense", "conv", "rnn")   # rnn: autoencoders only
FAMILIES = ("autoencoder", "gan", "classifier")
OBJECTIVES = ("plain", "denoising", "sparse", "variational")
OUTPUTS = ("sigmoid", "tanh")               # a GAN's generator output
AE_OUTPUTS = ("sigmoid", "linear")          # an autoencoder's: linear = identity, for MSE on unbounded data
NOISES = ("none", "gaussian", "dropout")
SPARSITIES = ("none", "l1", "kl")
LOSSES = ("bce", "mse")
OPTIMIZERS = ("sgd", "adam", "nadam", "rmsprop")
D_OPTIMIZERS = ("same", *OPTIMIZERS)
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
BETA_SCHEDULES = ("constant", "warmup", "cyclical")
MAX_BETA_EPOCHS = 1000

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "AutoencoderConfig", "GANConfig", "ClassifierConfig",
           "TrainConfig", "RunConfig", "StudyConfig", "from_dict", "with_overrides", "format_value", "setting_names",
           "switch_family"]


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
            raise ConfigError("data.image_size must be between 8 and 128, got {image_size}", image_size=self.image_size)
        if not 0.0 < self.validation_split < 1.0:
            raise ConfigError("data.validation_split must be in (0, 1), got {validation_split}",
                              validation_split=self.validation_split)


# ------------------------------------------------------------------------------------------ models
@dataclass
class ModelConfig:
    """What every family shares: the image-side network (dense ``hidden`` sizes, or conv ``channels``)."""
    family: ClassVar[str] = ""
    arch: str = "dense"                        # dense | conv | rnn (autoencoders: an LSTM reads the image's rows)
    hidden: tuple[int, ...] = (100,)           # dense: layer sizes from the image inwards; rnn: LSTM sizes
    channels: tuple[int, ...] = (16, 32, 64)   # conv: channels from the image inwards
    kernel_size: int = 3                       # conv: square kernel
    activation: str = "selu"                   # hidden layers (a GAN: the generator's)

    @property
    def generative(self) -> bool:
        """Whether the model can draw new images (a GAN, or a VAE from its prior)."""
        return False

    def validate(self) -> None:
        _choice("model.arch", self.arch, ARCHITECTURES)
        _choice("model.activation", self.activation, ACTIVATIONS)
        if self.arch == "rnn" and self.family != "autoencoder":
            raise ConfigError("model.arch: 'rnn' is an autoencoder architecture; a {family} is dense or conv",
                              family=self.family)
        if self.arch in ("dense", "rnn"):
            if any(h <= 0 for h in self.hidden):
                raise ConfigError("model.hidden: every layer size must be positive, got {hidden}",
                                  hidden=list(self.hidden))
        else:
            if not self.channels or any(c <= 0 for c in self.channels):
                raise ConfigError("model.channels: give positive channel counts, got {channels}",
                                  channels=list(self.channels))
            if self.kernel_size < 3 or self.kernel_size % 2 == 0:
                raise ConfigError("model.kernel_size must be odd and >= 3, got {kernel_size}",
                                  kernel_size=self.kernel_size)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dataclasses.asdict(self)}


@dataclass
class AutoencoderConfig(ModelConfig):
    """An autoencoder: encoder trunk -> code -> mirrored decoder, with any mix of the objectives."""
    family: ClassVar[str] = "autoencoder"
    latent: int = 30                           # code size; conv: 0 = the last feature map is the code
    code_activation: str = "same"              # code layer: 'same' as hidden, or any activation
    tied: bool = False                         # dense: decoder uses transposed encoder weights
    noise: str = "none"                        # denoising corruption of the input: none | gaussian | dropout
    noise_level: float = 0.0                   # gaussian sigma or dropout rate
    sparsity: str = "none"                     # none | l1 (activity penalty) | kl (to a target rate)
    sparsity_weight: float = 0.0
    sparsity_target: float = 0.1               # kl: target mean activation of each code unit
    variational: bool = False                  # Gaussian posterior + KL to N(0, I)
    beta: float = 1.0                          # weight of the KL term (per image, before /pixels)
    loss: str = "bce"                          # reconstruction loss: bce | mse (mean per pixel)
    output: str = "sigmoid"                    # decoder output: sigmoid | linear (identity; needs loss mse)
    code_noise: float = 0.0                    # Gaussian sigma on the code layer's input in training (the
                                               # book's hashing AE: 15, so sigmoid codes become nearly binary)

    @property
    def generative(self) -> bool:
        return self.variational

    @property
    def objective(self) -> str:
        """plain | denoising | sparse | variational: the objective a form shows for this config."""
        return ("variational" if self.variational else "sparse" if self.sparsity != "none"
                else "denoising" if self.noise != "none" else "plain")

    def with_objective(self, objective: str) -> "AutoencoderConfig":
        """A copy with only ``objective``'s options switched on (a form's one objective radio):
        'variational' sets variational, the others clear it; noise and sparsity stay only for their own."""
        _choice("objective", objective, OBJECTIVES)
        return dataclasses.replace(self, variational=objective == "variational",
                                   noise=self.noise if objective == "denoising" else "none",
                                   sparsity=self.sparsity if objective == "sparse" else "none")

    def validate(self) -> None:
        super().validate()
        _choice("model.code_activation", self.code_activation, ACTIVATIONS + ("same",))
        _choice("model.noise", self.noise, NOISES)
        _choice("model.sparsity", self.sparsity, SPARSITIES)
        _choice("model.loss", self.loss, LOSSES)
        _choice("model.output", self.output, AE_OUTPUTS)
        if self.output == "linear" and self.loss != "mse":
            raise ConfigError("model.output 'linear' needs loss 'mse': binary cross-entropy needs outputs in (0, 1)")
        if self.arch in ("dense", "rnn") and self.latent <= 0:
            raise ConfigError("model.latent must be a positive code size, got {latent}", latent=self.latent)
        if self.arch == "conv" and self.latent < 0:
            raise ConfigError("model.latent must be >= 0 (0 = feature-map code), got {latent}", latent=self.latent)
        if self.tied and self.arch != "dense":
            raise ConfigError("model.tied is only available for the dense architecture")
        if self.arch == "rnn":
            self._validate_rnn()
        if self.code_noise < 0:
            raise ConfigError("model.code_noise: a noise sigma must be >= 0, got {code_noise}",
                              code_noise=self.code_noise)
        if self.code_noise > 0 and (self.variational or (self.arch == "conv" and self.latent == 0)):
            raise ConfigError("model.code_noise needs a dense code layer: a VAE's code is already noisy, and a conv "
                              "model with latent 0 has no code layer")
        if self.noise == "gaussian" and not self.noise_level > 0:
            raise ConfigError("model.noise_level: gaussian noise needs sigma > 0, got {noise_level}",
                              noise_level=self.noise_level)
        if self.noise == "dropout" and not 0 < self.noise_level < 1:
            raise ConfigError("model.noise_level: dropout needs a rate in (0, 1), got {noise_level}",
                              noise_level=self.noise_level)
        if self.sparsity != "none" and not self.sparsity_weight > 0:
            raise ConfigError("model.sparsity_weight must be > 0 with {sparsity} sparsity", sparsity=self.sparsity)
        if self.sparsity == "kl":
            if not 0 < self.sparsity_target < 1:
                raise ConfigError("model.sparsity_target must be in (0, 1), got {sparsity_target}",
                                  sparsity_target=self.sparsity_target)
            if self.code_activation != "sigmoid":
                raise ConfigError("model.code_activation must be 'sigmoid' for KL sparsity "
                                  "(the KL compares mean activations in (0, 1) with the target rate)")
        if self.variational:
            if self.beta < 0:
                raise ConfigError("model.beta must be >= 0, got {beta}", beta=self.beta)
            if self.arch == "conv" and self.latent == 0:
                raise ConfigError("model.latent: a variational conv model needs a dense code size > 0")
            if self.tied:
                raise ConfigError("model.tied is not available for variational models")
            if self.sparsity != "none":
                raise ConfigError("model.sparsity cannot be combined with variational=True "
                                  "(the KL to N(0, I) already regularises the code)")

    def _validate_rnn(self) -> None:
        """What the recurrent architecture refuses, and why."""
        if not self.hidden:
            raise ConfigError("model.hidden: a recurrent autoencoder needs at least one LSTM size (the book: 100)")
        if self.variational:
            raise ConfigError("model.variational is not available for the rnn architecture: its code is an LSTM's "
                              "final state, bounded by tanh, where a Gaussian posterior needs free mean and "
                              "log-variance layers; use dense or conv")
        if self.code_noise > 0:
            raise ConfigError("model.code_noise is not available for the rnn architecture: its code is an LSTM's "
                              "state, with no dense code layer to put noise before; use dense")


@dataclass
class GANConfig(ModelConfig):
    """A GAN: ``hidden`` / ``channels`` are the discriminator's (stride-2 convs), the generator mirrors them."""
    family: ClassVar[str] = "gan"
    codings: int = 30                          # length of the random code the generator turns into an image
    d_activation: str = "leaky_relu"           # the discriminator's hidden activation
    d_dropout: float = 0.0                     # dropout after each discriminator layer
    batch_norm: bool = False                   # batch norm in the generator (DCGAN)
    output: str = "sigmoid"                    # generator output; tanh = images scaled to [-1, 1]

    @property
    def generative(self) -> bool:
        return True

    def validate(self) -> None:
        super().validate()
        _choice("model.d_activation", self.d_activation, ACTIVATIONS)
        _choice("model.output", self.output, OUTPUTS)
        if self.codings <= 0:
            raise ConfigError("model.codings: a GAN needs a codings size > 0, got {codings}", codings=self.codings)
        if not 0 <= self.d_dropout < 1:
            raise ConfigError("model.d_dropout must be in [0, 1), got {d_dropout}", d_dropout=self.d_dropout)


@dataclass
class ClassifierConfig(ModelConfig):
    """The domain classifier of the quality measure: trunk -> ``features`` (the FID's features) -> classes."""
    family: ClassVar[str] = "classifier"
    features: int = 128                        # size of the penultimate dense layer
    dropout: float = 0.0                       # dropout before the class head

    def validate(self) -> None:
        super().validate()
        if self.features <= 0:
            raise ConfigError("model.features must be a positive size, got {features}", features=self.features)
        if not 0 <= self.dropout < 1:
            raise ConfigError("model.dropout must be in [0, 1), got {dropout}", dropout=self.dropout)


MODEL_CONFIGS: dict[str, type[ModelConfig]] = {c.family: c for c in (AutoencoderConfig, GANConfig, ClassifierConfig)}
# Names every family understands for its own field: links and flags written before the families had configs
# of their own (`latent` was also a GAN's codings and the classifier's features size) keep working.
ALIASES: dict[str, dict[str, str]] = {"gan": {"latent": "codings"},
                                      "classifier": {"latent": "features", "d_dropout": "dropout"}}
# Format 1 had one flat model config for every family; its fields and defaults, to read old runs and links.
V1_MODEL_DEFAULTS: dict[str, Any] = {
    "family": "autoencoder", "arch": "dense", "hidden": (100,), "latent": 30, "activation": "selu",
    "code_activation": "same", "tied": False, "channels": (16, 32, 64), "kernel_size": 3, "noise": "none",
    "noise_level": 0.0, "sparsity": "none", "sparsity_weight": 0.0, "sparsity_target": 0.1, "variational": False,
    "beta": 1.0, "loss": "bce", "d_activation": "leaky_relu", "d_dropout": 0.0, "batch_norm": False,
    "output": "sigmoid"}


def switch_family(model: ModelConfig, family: str) -> ModelConfig:
    """``model`` as a config of ``family``: the shared fields carry over, the family's own start at defaults."""
    _choice("model.family", family, FAMILIES)
    if model.family == family:
        return copy.deepcopy(model)
    shared = {f.name: copy.deepcopy(getattr(model, f.name)) for f in fields(ModelConfig)}
    if shared["arch"] == "rnn":   # an autoencoder's only: its LSTM sizes become dense layers
        shared["arch"] = "dense"
    return MODEL_CONFIGS[family](**shared)


def model_field(family: str, name: str) -> str | None:
    """The field of ``family``'s config that ``name`` (a field name or an alias) sets, or None."""
    name = ALIASES.get(family, {}).get(name, name)
    return name if name in _field_names(MODEL_CONFIGS[family]) else None


# ------------------------------------------------------------------------------------------ training
def pinned_device() -> str | None:
    """The device every job of this server trains on (``AELAB_DEVICE``: a hosted demo on a GPU, say), or None
    when each run's own setting counts."""
    pinned = os.environ.get("AELAB_DEVICE", "").strip()
    if not pinned:
        return None
    if pinned not in DEVICES:
        raise ConfigError("AELAB_DEVICE must be one of {devices}, got {pinned!r}",
                          devices=", ".join(DEVICES), pinned=pinned)
    return pinned


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
    precision: str = "fp32"         # fp32 | bf16 | fp16: the training step's forward passes under autocast
    compile: bool = False           # torch.compile the networks of the training step (slow first steps)
    # GAN: optimizer/lr/momentum/rho above are the generator's; the discriminator's may differ
    d_optimizer: str = "same"       # gan: discriminator optimizer, 'same' as the generator's
    d_lr: float = 0.0               # gan: discriminator learning rate, 0 = same as lr
    d_steps: int = 1                # gan: discriminator steps per generator step
    label_smoothing: float = 0.0    # gan: real images are labelled 1 - label_smoothing for the discriminator
    # Greedy layer-wise training (dense autoencoders): one shallow autoencoder at a time, outer first, `epochs`
    # each; then, optionally, the whole stack together
    greedy: bool = False
    inner_lr: float = 0.0           # greedy: learning rate of the inner autoencoders (MSE on codes), 0 = lr
    finetune_epochs: int = 0        # greedy: epochs of training the stacked autoencoder as a whole afterwards
    finetune_lr: float = 0.0        # greedy: their learning rate, 0 = lr
    # A VAE's KL weight over training, updated every step (aelab.train.beta_scale): constant (model.beta
    # throughout), warmup (from 0 up to model.beta over beta_epochs), cyclical (cycles of beta_epochs, each
    # rising from 0 over its first half and holding model.beta over the second: Fu et al., 2019)
    beta_schedule: str = "constant"
    beta_epochs: float = 0.0        # warmup: epochs to reach model.beta; cyclical: epochs of one cycle

    def validate(self) -> None:
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _choice("train.d_optimizer", self.d_optimizer, D_OPTIMIZERS)
        _seed("train.seed", self.seed)
        if self.d_lr < 0:
            raise ConfigError("train.d_lr must be >= 0 (0 = same as lr), got {d_lr}", d_lr=self.d_lr)
        if not 1 <= self.d_steps <= 10:
            raise ConfigError("train.d_steps must be between 1 and 10, got {d_steps}", d_steps=self.d_steps)
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError("train.label_smoothing must be in [0, 0.5), got {label_smoothing}",
                              label_smoothing=self.label_smoothing)
        _choice("train.device", self.device, DEVICES)
        _choice("train.precision", self.precision, PRECISIONS)
        if not self.lr > 0:
            raise ConfigError("train.lr: the learning rate must be > 0, got {lr}", lr=self.lr)
        if self.momentum < 0 or self.momentum >= 1:
            raise ConfigError("train.momentum must be in [0, 1), got {momentum}", momentum=self.momentum)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("train.nesterov needs optimizer 'sgd' with momentum > 0")
        if not 0 < self.rho < 1:
            raise ConfigError("train.rho must be in (0, 1), got {rho}", rho=self.rho)
        if self.batch_size <= 0:
            raise ConfigError("train.batch_size must be positive, got {batch_size}", batch_size=self.batch_size)
        if self.epochs <= 0:
            raise ConfigError("train.epochs must be positive, got {epochs}", epochs=self.epochs)
        for name in ("inner_lr", "finetune_lr"):
            if getattr(self, name) < 0:
                raise ConfigError("train.{name} must be >= 0 (0 = same as lr), got {value}",
                                  name=name, value=getattr(self, name))
        if self.finetune_epochs < 0:
            raise ConfigError("train.finetune_epochs must be >= 0, got {finetune_epochs}",
                              finetune_epochs=self.finetune_epochs)
        _choice("train.beta_schedule", self.beta_schedule, BETA_SCHEDULES)
        if self.beta_schedule == "constant" and self.beta_epochs:
            raise ConfigError("train.beta_epochs is a setting of a beta schedule: set beta_schedule to warmup or "
                              "cyclical, or beta_epochs to 0")
        if self.beta_schedule != "constant" and not 0 < self.beta_epochs <= MAX_BETA_EPOCHS:
            raise ConfigError("train.beta_epochs must be in (0, {max_beta_epochs}] for a {beta_schedule} schedule, "
                              "got {beta_epochs}",
                              max_beta_epochs=MAX_BETA_EPOCHS, beta_schedule=self.beta_schedule,
                              beta_epochs=self.beta_epochs)
        if not self.greedy and (self.finetune_epochs or self.inner_lr or self.finetune_lr):
            raise ConfigError("train.inner_lr, finetune_epochs and finetune_lr are settings of greedy training: "
                              "set greedy too")

    def discriminator(self) -> "TrainConfig":
        """The optimiser settings of a GAN's discriminator: its own optimiser and rate where given."""
        return dataclasses.replace(self, optimizer=self.optimizer if self.d_optimizer == "same" else self.d_optimizer,
                                   lr=self.d_lr or self.lr)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=AutoencoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None        # the recipe this config started from, if any

    def validate(self) -> "RunConfig":
        """Check every section; returns self. Entry points call it once and hand the config inward."""
        for section in ("data", "model", "train"):
            obj = getattr(self, section)
            for name, value in vars(obj).items():
                if isinstance(value, float) and not math.isfinite(value):
                    raise ConfigError("{section}.{name} must be a finite number, got {value}",
                                      section=section, name=name, value=value)
            obj.validate()
        if self.train.greedy:
            m = self.model
            if m.family != "autoencoder" or m.arch != "dense" or m.tied or m.variational or m.sparsity != "none" \
                    or m.code_noise:
                raise ConfigError("train.greedy trains a dense stack one autoencoder at a time: it needs a dense, "
                                  "untied autoencoder without a variational, sparse or code-noise objective")
        if self.train.beta_schedule != "constant" and not getattr(self.model, "variational", False):
            raise ConfigError("train.beta_schedule weighs a variational autoencoder's KL term: it needs the "
                              "variational objective")
        return self

    @property
    def total_epochs(self) -> int:
        """Epochs of the whole run: with greedy training, ``epochs`` per phase (one per dense layer and the
        code layer) plus ``finetune_epochs``."""
        t = self.train
        return t.epochs * (len(self.model.hidden) + 1) + t.finetune_epochs if t.greedy else t.epochs

    def phase_labels(self, lang: str = DEFAULT_LANGUAGE) -> dict[int, str]:
        """{phase: what it trains} of greedy training (empty otherwise), as the history's ``phase`` numbers them,
        in ``lang``."""
        if not self.train.greedy:
            return {}
        _ = gettext_for(lang)
        sizes = [_("images"), *map(str, self.model.hidden), str(self.model.latent)]
        labels = {i + 1: f"{a} → {b} → {a}" for i, (a, b) in enumerate(zip(sizes, sizes[1:]))}
        if self.train.finetune_epochs:
            labels[len(labels) + 1] = _("the whole stack")
        return labels

    def to_dict(self) -> dict[str, Any]:
        return {"data": dataclasses.asdict(self.data), "model": self.model.to_dict(),
                "train": dataclasses.asdict(self.train), "preset": self.preset}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        return from_dict(cls, d)


COMPARE_KS = (2, 5, 10, 30, 64)   # code sizes of a PCA-vs-autoencoders comparison (aelab.dimred)
MAX_COMPARE_K = 256
MAX_COMPARE_EPOCHS = 500   # of each of a comparison's autoencoders
HEADS = ("linear", "mlp")
STUDY_BUDGETS = (10, 50, 100, 500, 1000, 5000)
MAX_STUDY_LABELS = 60_000   # labelled images in one budget (a whole Fashion-MNIST training set)


@dataclass
class StudyConfig:
    """An unsupervised-pretraining study (:mod:`aelab.pretrain`): how well a classifier learns from a few labels,
    from scratch, on a frozen pretrained encoder, and fine-tuning it. The three network variants share the
    head, the optimiser (Adam), the epochs and the labelled subsets; there is no early stopping."""
    labels: tuple[int, ...] = STUDY_BUDGETS   # labelled training images per budget, balanced over the classes
    seeds: int = 3                  # how many seeds: seed, seed + 1, ...; each draws its own labelled subsets
    seed: int = 0
    head: str = "linear"            # linear | mlp (one hidden layer of `hidden` ReLU units)
    hidden: int = 128               # the mlp head's width
    epochs: int = 30                # passes over a budget's labelled images, and at least `min_steps` updates
    min_steps: int = 500            # so that 10 labels still get 500 updates (30 epochs of 10 images would be 30)
    batch_size: int = 64            # or the whole budget when it is smaller
    lr: float = 3e-3                # Adam: the head's, and every layer's when training from scratch
    encoder_lr: float = 3e-4        # Adam: the pretrained encoder's while fine-tuning (the head has `lr`)

    def validate(self) -> "StudyConfig":
        """Check every field against its bounds; returns self."""
        if not 1 <= len(self.labels) <= 12 or not all(1 <= n <= MAX_STUDY_LABELS for n in self.labels):
            raise ConfigError("study.labels: 1 to 12 budgets, each between 1 and {max_study_labels:,} labelled "
                              "images, got {labels}", max_study_labels=MAX_STUDY_LABELS, labels=self.labels)
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError("study.labels: each budget once, got {labels}", labels=self.labels)
        if not 1 <= self.seeds <= 10:
            raise ConfigError("study.seeds must be between 1 and 10, got {seeds}", seeds=self.seeds)
        _seed("study.seed", self.seed)
        _choice("study.head", self.head, HEADS)
        for name, low, high in (("hidden", 1, 4096), ("epochs", 1, 500), ("min_steps", 0, 10_000),
                                ("batch_size", 1, 4096)):
            if not low <= getattr(self, name) <= high:
                raise ConfigError("study.{name} must be between {low} and {high}, got {value}",
                                  name=name, low=low, high=high, value=getattr(self, name))
        for name in ("lr", "encoder_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= 10):
                raise ConfigError("study.{name}: a learning rate must be in (0, 10], got {value}",
                                  name=name, value=value)
        return self

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudyConfig":
        return from_dict(cls, d, "study.")


MAX_SEED = 2**31 - 1   # the largest seed of a run or a study: a signed 32-bit integer, which every generator here takes


def _seed(name: str, value: int) -> None:
    if not 0 <= value <= MAX_SEED:
        raise ConfigError("{name} must be between 0 and 2**31 - 1, got {seed}", name=name, seed=value)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError("{name}: unknown value {value!r}; choose one of {allowed}",
                          name=name, value=value, allowed=", ".join(allowed))


def _field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


# ------------------------------------------------------------------------------------ from plain data
def from_dict(cls, d: dict[str, Any], prefix: str = ""):
    """Build dataclass ``cls`` from a dict, converting JSON lists to tuples and checking types.

    A model section is built as its ``family``'s config; a format-1 model section (one flat config for
    every family) is read too."""
    if not isinstance(d, dict):
        raise ConfigError("{where}: expected an object, got {got}",
                          where=prefix or "config", got=type(d).__name__)
    if cls is ModelConfig or (isinstance(cls, type) and issubclass(cls, ModelConfig)):
        cls, d = _model_class_and_fields(d, prefix)
    hints = typing.get_type_hints(cls)
    known = set(_field_names(cls))
    unknown = set(d) - known
    if unknown:
        raise ConfigError("{where}: unknown field(s) {unknown}; known: {known}",
                          where=prefix or "config", unknown=", ".join(sorted(unknown)),
                          known=", ".join(sorted(known)))
    return cls(**{name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in d.items()})


def _model_class_and_fields(d: dict[str, Any], prefix: str) -> tuple[type[ModelConfig], dict[str, Any]]:
    family = d.get("family", "autoencoder")
    _choice(f"{prefix}family", family, FAMILIES)
    d = {k: v for k, v in d.items() if k != "family"}
    if set(V1_MODEL_DEFAULTS) <= {*d, "family"}:   # format 1: every family's fields at once
        d = _upgrade_v1(family, d)
    else:
        d = {model_field(family, k) or k: v for k, v in d.items()}
    return MODEL_CONFIGS[family], d


def _upgrade_v1(family: str, d: dict[str, Any]) -> dict[str, Any]:
    """A format-1 model dict as ``family``'s fields: aliases renamed, other families' fields dropped."""
    return {model_field(family, k): v for k, v in d.items() if model_field(family, k) is not None}


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
            raise ConfigError("{where}: expected a list, got {value!r}", where=where, value=value)
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
        raise ConfigError("{where}: expected {expected}, got {value!r}",
                          where=where, expected=hint.__name__, value=value) from None
    raise ConfigError("{where}: unsupported type {hint}", where=where, hint=hint)


# ------------------------------------------------------------------------------ flat settings
def setting_names() -> list[tuple[str, str, Any, Any, tuple[str, ...]]]:
    """(section, name, type, default, families) for every flat setting: a CLI flag and a link key each.

    Model settings list the families that have them (a name shared by several families appears once)."""
    out: list[tuple[str, str, Any, Any, tuple[str, ...]]] = [("model", "family", str, "autoencoder", FAMILIES)]
    for section, cls in (("data", DataConfig), ("train", TrainConfig)):
        hints = typing.get_type_hints(cls)
        out += [(section, f.name, hints[f.name], getattr(cls(), f.name), ()) for f in fields(cls)]
    seen: dict[str, int] = {}
    for family, cls in MODEL_CONFIGS.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if f.name in seen:
                s, n, h, default, fams = out[seen[f.name]]
                out[seen[f.name]] = (s, n, h, default, (*fams, family))
            else:
                seen[f.name] = len(out)
                out.append(("model", f.name, hints[f.name], getattr(cls(), f.name), (family,)))
    return out


def _sections(cfg: RunConfig) -> dict[str, Any]:
    return {"data": cfg.data, "model": cfg.model, "train": cfg.train}


def with_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with ``{"section.field": value}`` (or bare names) replaced; strings are parsed.

    ``family`` is applied first (the model becomes that family's config, shared fields kept); a model
    name is then the family's own field or an alias of it (``latent`` is a GAN's ``codings``). A format-1
    name that another family owns is accepted when it asks for that name's old default (a no-op)."""
    new = copy.deepcopy(cfg)
    rest = dict(overrides)
    new.preset = rest.pop("preset", new.preset)
    family = rest.pop("model.family", rest.pop("family", None))
    if family is not None:
        new.model = switch_family(new.model, parse_scalar(str, family, "model.family"))
    data_train = {n: s for s in ("data", "train") for n in _field_names(type(_sections(new)[s]))}
    for key, value in rest.items():
        section, _, name = key.rpartition(".")
        section = section or data_train.get(name, "model")
        if section == "model":
            target = model_field(new.model.family, name)
            if target is None:
                if name in V1_MODEL_DEFAULTS and _coerce(type(V1_MODEL_DEFAULTS[name]), value, f"model.{name}") \
                        == V1_MODEL_DEFAULTS[name]:
                    continue
                if name in V1_MODEL_DEFAULTS or any(model_field(f, name) for f in FAMILIES):
                    raise ConfigError("unknown setting {key!r} for a {family}", key=key, family=new.model.family)
                raise ConfigError("unknown setting {key!r}", key=key)
            name = target
        obj = _sections(new).get(section)
        if obj is None or name not in _field_names(type(obj)):
            raise ConfigError("unknown setting {key!r}", key=key)
        setattr(obj, name, _coerce(typing.get_type_hints(type(obj))[name], value, f"{section}.{name}"))
    return new


def format_value(value: Any) -> str:
    """A setting as text for a flag or a link: tuples comma-separated, booleans lower-case."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
