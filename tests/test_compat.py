"""Compatibility of the per-family configs: format-1 runs and the shipped examples load, and every CLI flag
and share-link key of format 1 still works, each setting the field of the model's own family."""
import json
import shutil
from pathlib import Path

import pytest
import torch

import aelab
from aelab.cli import build_parser, config_from_args
from aelab.config import (
    AutoencoderConfig,
    ClassifierConfig,
    GANConfig,
    RunConfig,
    setting_names,
    switch_family,
    with_overrides,
)
from aelab.presets import PRESETS, command_line, differences, python_snippet, share_params, start_of
from aelab.runs import FORMAT

ROOT = Path(__file__).resolve().parents[1]

# Every model flag of format 1 (one flat model config for every family), with a value, the preset of a
# family where it applied, and the field of that family's config that it sets now.
V1_MODEL_FLAGS = [
    ("arch", "conv", "stacked", "arch"), ("hidden", "64,16", "stacked", "hidden"), ("latent", "12", "stacked", "latent"),
    ("latent", "12", "gan", "codings"), ("latent", "12", "classifier", "features"),
    ("activation", "elu", "stacked", "activation"), ("code-activation", "tanh", "stacked", "code_activation"),
    ("channels", "8,16", "conv", "channels"), ("kernel-size", "5", "conv", "kernel_size"),
    ("noise", "gaussian", "denoising-dropout", "noise"), ("noise-level", "0.3", "denoising-dropout", "noise_level"),
    ("sparsity", "kl", "sparse-l1", "sparsity"), ("sparsity-weight", "0.01", "sparse-l1", "sparsity_weight"),
    ("sparsity-target", "0.2", "sparse-kl", "sparsity_target"), ("beta", "2", "vae", "beta"),
    ("loss", "mse", "stacked", "loss"), ("d-activation", "elu", "gan", "d_activation"),
    ("d-dropout", "0.2", "gan", "d_dropout"), ("d-dropout", "0.2", "classifier", "dropout"),
    ("output", "tanh", "gan", "output"),
]
V1_BOOL_FLAGS = [("tied", "stacked", "tied"), ("variational", "vae", "variational"),
                 ("batch-norm", "gan", "batch_norm")]
V1_OTHER_FLAGS = [("data", "digits"), ("validation-split", "0.2"), ("data-dir", "/tmp/x"), ("image-size", "16"),
                  ("optimizer", "adam"), ("lr", "0.01"), ("momentum", "0.5"), ("rho", "0.8"),
                  ("batch-size", "64"), ("epochs", "3"), ("seed", "7"), ("device", "cpu"), ("d-optimizer", "sgd"),
                  ("d-lr", "0.01"), ("d-steps", "2"), ("label-smoothing", "0.1")]


def parse(*args) -> RunConfig:
    return config_from_args(build_parser().parse_args(["train", *args]))


@pytest.mark.parametrize("flag, value, recipe, field", V1_MODEL_FLAGS)
def test_every_v1_model_flag_sets_its_familys_field(flag, value, recipe, field):
    cfg = parse("--preset", recipe, f"--{flag}", value)
    expected = type(getattr(start_of(cfg).model, field))
    got = getattr(cfg.model, field)
    assert got == (tuple(int(v) for v in value.split(",")) if expected is tuple else expected(value))
    # the same name as a share-link key sets the same field
    linked = with_overrides(aelab.preset(recipe), {flag.replace("-", "_"): value})
    assert getattr(linked.model, field) == got


@pytest.mark.parametrize("flag, recipe, field", V1_BOOL_FLAGS)
def test_every_v1_switch_works(flag, recipe, field):
    assert getattr(parse("--preset", recipe, f"--{flag}").model, field) is True
    assert getattr(parse("--preset", recipe, f"--no-{flag}").model, field) is False


@pytest.mark.parametrize("flag, value", V1_OTHER_FLAGS)
def test_every_v1_data_and_train_flag_works(flag, value):
    cfg = parse("--preset", "gan", f"--{flag}", value)
    assert cfg.model.family == "gan"
    section = "data" if flag in ("data", "validation-split", "data-dir", "image-size") else "train"
    name = "name" if flag == "data" else flag.replace("-", "_")
    assert str(getattr(getattr(cfg, section), name)) in (value, str(float(value)) if "." in value else value)


def test_family_flag_switches_the_model_config():
    assert isinstance(parse("--family", "gan").model, GANConfig)
    clf = parse("--family", "classifier", "--arch", "conv", "--channels", "8,16", "--latent", "64")
    assert isinstance(clf.model, ClassifierConfig) and clf.model.features == 64 and clf.model.channels == (8, 16)
    assert isinstance(parse("--preset", "gan", "--family", "autoencoder").model, AutoencoderConfig)


def test_v1_settings_of_another_family_are_refused_unless_they_change_nothing():
    assert parse("--preset", "gan", "--noise", "none", "--no-variational").model == aelab.preset("gan").model
    with pytest.raises(aelab.ConfigError, match="'model.noise' for a gan"):
        parse("--preset", "gan", "--noise", "gaussian")
    with pytest.raises(aelab.ConfigError, match="for a gan"):
        with_overrides(aelab.preset("gan"), {"sparsity": "l1"})


def test_every_setting_is_a_flag():
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    assert {f"{section}.{name}" for section, name, *_ in setting_names()} <= flags


V1_CONFIGS = {   # config.json "config" sections as format 1 wrote them (dataclasses.asdict of the flat config)
    "gan": {"family": "gan", "arch": "dense", "hidden": [150, 100], "latent": 30, "activation": "selu",
            "code_activation": "same", "tied": False, "channels": [16, 32, 64], "kernel_size": 3, "noise": "none",
            "noise_level": 0.0, "sparsity": "none", "sparsity_weight": 0.0, "sparsity_target": 0.1,
            "variational": False, "beta": 1.0, "loss": "bce", "d_activation": "selu", "d_dropout": 0.0,
            "batch_norm": False, "output": "sigmoid"},
    "classifier": {"family": "classifier", "arch": "conv", "hidden": [100], "latent": 128, "activation": "relu",
                   "code_activation": "same", "tied": False, "channels": [32, 64], "kernel_size": 3, "noise": "none",
                   "noise_level": 0.0, "sparsity": "none", "sparsity_weight": 0.0, "sparsity_target": 0.1,
                   "variational": False, "beta": 1.0, "loss": "bce", "d_activation": "leaky_relu", "d_dropout": 0.3,
                   "batch_norm": False, "output": "sigmoid"},
}


@pytest.mark.parametrize("family", list(V1_CONFIGS))
def test_v1_model_sections_read_as_their_family(family):
    recipe = {"gan": "gan", "classifier": "classifier"}[family]
    cfg = RunConfig.from_dict({"model": V1_CONFIGS[family]})
    assert cfg.model == aelab.preset(recipe).model


def test_shipped_examples_are_format_1_and_load(digits):
    runs, problems = aelab.RunStore(ROOT / "examples", read_only=True).scan()
    assert not problems and {r.family for r in runs} == {"autoencoder", "gan", "classifier"}
    for run in runs:
        assert run.meta["format"] in (1, FORMAT)   # shipped as format 1; `make examples` writes the current one
        model = run.load_model()
        assert isinstance(run.config.model, {"autoencoder": AutoencoderConfig, "gan": GANConfig,
                                             "classifier": ClassifierConfig}[run.family])
        x = torch.rand(2, *run.image_shape)
        if model.can_sample:
            assert model.sample(2).shape == (2, *run.image_shape)
        if model.can_encode:
            assert model.encode(x).shape == (2, model.latent_dim)


def test_the_shipped_pretraining_study_loads_and_names_shipped_encoders():
    from aelab.pretrain import VARIANTS, summarize

    store = aelab.RunStore(ROOT / "examples", read_only=True)
    (study,), problems = store.scan_studies()
    assert not problems and study.config == aelab.StudyConfig()   # the default study
    assert set(study.meta["encoders"]) <= set(store.names())
    rows = summarize(study.fits)
    assert {r["variant"] for r in rows} == set(VARIANTS) and all(len(r["seeds"]) == 3 for r in rows)


def test_a_format_1_run_written_by_hand_loads_and_trains_on(tmp_path):
    store = aelab.RunStore(tmp_path)
    cfg = aelab.preset("gan", "digits")
    cfg.model.hidden, cfg.train.epochs = (16,), 1
    run = aelab.train(cfg, runs_dir=tmp_path, name="new").run
    doc = json.loads((run.path / "config.json").read_text())
    assert doc["meta"]["format"] == 2 and doc["config"]["model"]["codings"] == 30
    old = shutil.copytree(run.path, tmp_path / "old")
    doc["meta"]["format"] = 1
    doc["config"]["model"] = {**V1_CONFIGS["gan"], "hidden": [16]}
    (old / "config.json").write_text(json.dumps(doc))
    assert store.open("old").config == run.config
    assert torch.equal(store.open("old").load_model().sample(2, generator=torch.Generator().manual_seed(0)),
                       run.load_model().sample(2, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("recipe", [*PRESETS, None])
def test_one_formatter_round_trips_links_lines_and_snippets(recipe, tmp_path):
    cfg = aelab.preset(recipe, "digits") if recipe else RunConfig(aelab.DataConfig("digits"))
    cfg = with_overrides(cfg, {"lr": 0.25, "epochs": 2, "seed": 3})
    if cfg.model.family == "autoencoder":
        cfg.model.hidden = (40, 20)
    # greedy training is an autoencoder's: a classifier made from the greedy recipe trains the usual way
    other = with_overrides(cfg, {"family": "classifier", **({"greedy": False, "inner_lr": 0, "finetune_epochs": 0,
                                                             "finetune_lr": 0} if cfg.train.greedy else {})})
    for c in (cfg, other):
        changes = differences(c)
        assert with_overrides(start_of(c), changes) == c
        params = share_params(c)
        assert with_overrides(start_of(RunConfig(aelab.DataConfig(params.pop("data")), preset=params.pop("preset"))),
                              params) == c
        line = command_line(c).split()[4:]   # after "python -m aelab train"
        assert parse(*line) == c
        scope: dict = {}
        exec(python_snippet(c).replace("exp = aelab.train(cfg, runs_dir='runs')", ""), scope)
        assert scope["cfg"] == c


def test_switch_family_keeps_the_shared_fields():
    g = switch_family(aelab.preset("conv").model, "gan")
    assert isinstance(g, GANConfig) and g.channels == (16, 32, 64) and g.codings == GANConfig().codings
