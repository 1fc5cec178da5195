import json

import pytest

from aelab.config import ConfigError, RunConfig, with_overrides
from aelab.presets import PRESETS, preset


@pytest.mark.parametrize("section, changes, message", [
    ("train", {"lr": -0.1}, "train.lr"),
    ("train", {"lr": 0}, "train.lr"),
    ("train", {"batch_size": 0}, "train.batch_size"),
    ("train", {"epochs": 0}, "train.epochs"),
    ("train", {"optimizer": "adagrad"}, "train.optimizer"),
    ("train", {"nesterov": True}, "train.nesterov"),
    ("train", {"device": "tpu"}, "train.device"),
    ("train", {"seed": -1}, "train.seed"),
    ("train", {"seed": 2**64}, "train.seed"),   # torch's generators take no seed this large: fail here, not mid-run
    ("model", {"latent": 0}, "model.latent"),
    ("model", {"hidden": (100, -3)}, "model.hidden"),
    ("model", {"activation": "swish"}, "model.activation"),
    ("model", {"noise": "gaussian", "noise_level": 0}, "model.noise_level"),
    ("model", {"noise": "dropout", "noise_level": 1.0}, "model.noise_level"),
    ("model", {"sparsity": "kl", "sparsity_weight": 0.1}, "model.code_activation"),
    ("model", {"sparsity": "l1", "sparsity_weight": 0}, "model.sparsity_weight"),
    ("model", {"arch": "conv", "kernel_size": 4}, "model.kernel_size"),
    ("model", {"arch": "conv", "latent": 0, "variational": True}, "model.latent"),
    ("model", {"variational": True, "tied": True}, "model.tied"),
    ("data", {"validation_split": 1.0}, "data.validation_split"),
])
def test_invalid_values_name_the_field(section, changes, message):
    cfg = RunConfig()
    for k, v in changes.items():
        setattr(getattr(cfg, section), k, v)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        cfg.validate()


def test_round_trip_through_json():
    cfg = preset("sparse-kl")
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert isinstance(again.model.hidden, tuple)


def test_from_dict_rejects_unknown_fields_and_bad_types():
    with pytest.raises(ConfigError, match="unknown field"):
        RunConfig.from_dict({"model": {"layers": [1]}})
    with pytest.raises(ConfigError, match="train.lr: expected float"):
        RunConfig.from_dict({"train": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="train.epochs: expected int"):
        RunConfig.from_dict({"train": {"epochs": 2.5}})


def test_overrides_accept_strings_from_urls_and_flags():
    cfg = with_overrides(preset("stacked"), {"hidden": "200,50", "train.lr": "0.5", "tied": "true", "epochs": "3"})
    assert cfg.model.hidden == (200, 50) and cfg.train.lr == 0.5 and cfg.model.tied and cfg.train.epochs == 3
    with pytest.raises(ConfigError, match="unknown setting"):
        with_overrides(cfg, {"colour": "red"})


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid(name):
    cfg = preset(name).validate()
    assert cfg.preset == name


def test_book_recipes():
    s = preset("stacked")
    assert (s.model.hidden, s.model.latent, s.model.activation) == ((100,), 30, "selu")
    assert (s.train.optimizer, s.train.lr, s.train.epochs, s.train.batch_size) == ("sgd", 1.5, 10, 32)
    v = preset("vae")
    assert v.model.variational and v.model.latent == 10 and v.train.batch_size == 128 and v.train.optimizer == "rmsprop"
    assert preset("conv").train.epochs == 5
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("nope")
