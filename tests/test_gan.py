"""GANs and the quality measure: the alternating step, both presets, the domain classifier and the FID."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import aelab
from aelab import quality
from aelab.config import ConfigError, GANConfig, TrainConfig, with_overrides
from aelab.data import to_float
from aelab.models import build_model
from aelab.optim import KerasRMSprop
from aelab.train import precision_update
from conftest import run_cli

DENSE = GANConfig(arch="dense", hidden=(32, 16), codings=4, d_activation="selu")
CONV = GANConfig(arch="conv", channels=(8, 16), kernel_size=5, codings=8, d_dropout=0.4, batch_norm=True,
                 output="tanh")


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return all(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("cfg", [DENSE, CONV], ids=["dense", "conv"])
def test_one_step_updates_both_networks(cfg, digits):
    model = build_model(cfg, digits.image_shape, seed=0).train()
    opts = model.configure_optimizers(TrainConfig(optimizer="rmsprop", lr=1e-3))
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    out = model.training_step(to_float(digits.x_train[:32]), None, opts, torch.Generator().manual_seed(0))
    assert changed(g_before, model.generator) and changed(d_before, model.discriminator)
    assert set(out.terms) == {"d_loss", "g_loss", "acc_real", "acc_fake"}
    assert all(torch.isfinite(v) for v in out.terms.values())
    assert 0 <= out.terms["acc_real"] <= 1 and torch.isclose(out.loss, out.terms["d_loss"] + out.terms["g_loss"])
    assert all(p.requires_grad for p in model.discriminator.parameters())   # unfrozen after the generator step


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_steps_with_several_discriminator_updates(digits, precision):
    model = build_model(CONV, digits.image_shape, seed=0).train()
    opts = model.configure_optimizers(TrainConfig(optimizer="rmsprop", lr=1e-3, d_steps=2))
    update = precision_update(precision, torch.device("cpu"))
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    for _ in range(3):   # fp16: one gradient scaler for both optimisers, the discriminator's stepping twice
        out = model.training_step(to_float(digits.x_train[:32]), None, opts, torch.Generator().manual_seed(0), update)
    assert changed(g_before, model.generator) and changed(d_before, model.discriminator)
    assert all(torch.isfinite(v) for v in out.terms.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_per_network_settings_are_used(digits):
    model = build_model(DENSE, digits.image_shape)
    steps = model.configure_optimizers(TrainConfig(optimizer="rmsprop", lr=1e-3, d_optimizer="sgd", d_lr=0.05,
                                                   d_steps=3, label_smoothing=0.2))
    g_opt, d_opt = steps.generator, steps.discriminator
    assert (steps.d_steps, steps.label_smoothing) == (3, 0.2)   # the step's options travel with the optimisers
    assert isinstance(g_opt, KerasRMSprop) and g_opt.param_groups[0]["lr"] == 1e-3
    assert isinstance(d_opt, torch.optim.SGD) and d_opt.param_groups[0]["lr"] == 0.05
    assert {id(p) for p in d_opt.param_groups[0]["params"]} == {id(p) for p in model.discriminator.parameters()}

    # two discriminator steps per generator step: the discriminator moves further in one training step
    moves = {}
    for d_steps in (1, 2):
        model = build_model(DENSE, digits.image_shape, seed=0).train()
        opts = model.configure_optimizers(TrainConfig(optimizer="sgd", lr=0.01, d_steps=d_steps))
        before = snapshot(model.discriminator)
        model.training_step(to_float(digits.x_train[:32]), None, opts, torch.Generator().manual_seed(0))
        moves[d_steps] = sum((a - b).abs().sum().item() for a, b in zip(before, model.discriminator.parameters()))
    assert moves[2] > 1.5 * moves[1]


def test_label_smoothing_lowers_the_real_target(digits):
    model = build_model(DENSE, digits.image_shape, seed=0)
    real, fake = to_float(digits.x_train[:64]), torch.rand(64, 1, 8, 8)
    with torch.no_grad():
        logits = model.discriminate(real)
        plain = model._d_terms(model.discriminate(real), model.discriminate(fake), 0.0)["d_loss"]
        smooth = model._d_terms(model.discriminate(real), model.discriminate(fake), 0.1)["d_loss"]
        expected_real = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.9))
        expected_fake = torch.nn.functional.binary_cross_entropy_with_logits(model.discriminate(fake),
                                                                             torch.zeros(64))
    assert torch.isclose(smooth, (expected_real + expected_fake) / 2) and not torch.isclose(smooth, plain)


def test_dcgan_preset_builds_the_book_architecture():
    model = build_model(aelab.preset("dcgan").model, (1, 28, 28))
    g = [type(m).__name__ for m in model.generator]
    assert g == ["Linear", "Unflatten", "BatchNorm2d", "ConvTranspose2d", "SELU", "BatchNorm2d", "ConvTranspose2d"]
    assert model.generator[0].out_features == 7 * 7 * 128 and model.generator[3].out_channels == 64
    d = [type(m).__name__ for m in model.discriminator]
    assert d == ["Conv2d", "LeakyReLU", "Dropout", "Conv2d", "LeakyReLU", "Dropout", "Flatten", "Linear"]
    assert model.discriminator[0].stride == (2, 2) and model.discriminator[0].kernel_size == (5, 5)
    images = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 28, 28) and 0 <= images.min() and images.max() <= 1

    simple = build_model(aelab.preset("gan").model, (1, 28, 28))
    assert [m.out_features for m in simple.generator if isinstance(m, torch.nn.Linear)] == [100, 150, 784]
    assert [m.out_features for m in simple.discriminator if isinstance(m, torch.nn.Linear)] == [150, 100, 1]


def test_gan_configs_are_checked():
    with pytest.raises(ConfigError, match="variational"):   # autoencoder objectives do not apply to a GAN
        with_overrides(aelab.preset("gan"), {"variational": True})
    with pytest.raises(ConfigError, match="d_steps"):
        TrainConfig(d_steps=0).validate()
    with pytest.raises(ConfigError, match="label_smoothing"):
        TrainConfig(label_smoothing=0.7).validate()
    with pytest.raises(ConfigError, match="too many"):
        build_model(replace(CONV, channels=(8, 8, 8, 8)), (1, 8, 8))


@pytest.fixture
def classifier_run(digits_classifier):
    return digits_classifier


def test_classifier_learns_the_classes(classifier_run):
    assert classifier_run.metrics["test"]["accuracy"] > 0.85
    assert classifier_run.history["val_acc"][-1] > classifier_run.history["val_acc"][0]


def test_frechet_distance_separates_real_from_noise(classifier_run, digits):
    clf = classifier_run.load_model()
    rng = np.random.default_rng(0)
    f_a, _ = quality.features(clf, digits.x_test[:150])
    # a set against itself: 0 up to rounding, which the square roots of the covariance's near-zero eigenvalues
    # (150 images, 128 features) raise to -5e-7 .. -1.1e-6 for a trace of about 50; real against real is about 4.5
    spread = np.trace(np.cov(f_a, rowvar=False))
    assert quality.frechet_distance(f_a, f_a) == pytest.approx(0, abs=1e-6 * spread)
    f_real, _ = quality.features(clf, digits.x_test[150:])
    # pixel-shuffled test images: the same intensities, no digit left
    shuffled = digits.x_test[150:].reshape(len(digits.x_test) - 150, -1)[:, rng.permutation(64)].reshape(-1, 1, 8, 8)
    f_noise, _ = quality.features(clf, shuffled)
    real_vs_real, real_vs_noise = quality.frechet_distance(f_a, f_real), quality.frechet_distance(f_a, f_noise)
    assert real_vs_noise > 5 * real_vs_real > 0


def test_gan_trains_and_is_scored(classifier_run, digits, tmp_path):
    cfg = aelab.preset("gan", "digits")
    cfg.train.epochs = 30
    exp = aelab.train(cfg, runs_dir=tmp_path, name="g", dataset=digits)
    h = exp.run.history
    assert all(np.isfinite(h[k]).all() for k in ("d_loss", "g_loss", "val_d_loss", "val_g_loss"))
    assert exp.run.timeline()["frames"].shape == (31, 32, 8, 8) and "inputs" not in exp.run.timeline()
    assert "test" not in exp.run.metrics and "quality" not in exp.run.metrics   # no classifier in this store

    q = quality.quality_report(exp.run.load_model(), classifier_run.load_model(), digits, n=1000,
                               classifier_name=classifier_run.name,
                               classifier_accuracy=classifier_run.metrics["test"]["accuracy"])
    untrained = build_model(cfg.model, digits.image_shape, seed=1)
    q0 = quality.quality_report(untrained, classifier_run.load_model(), digits, n=1000)
    clf = classifier_run.load_model()   # the test set's features are computed once per classifier
    first = quality.quality_report(untrained, clf, digits, n=500)
    assert list(quality._REFERENCES[clf]) == [(digits.name, digits.source, 500, 0)]
    assert quality.quality_report(exp.run.load_model(), clf, digits, n=500).reference_fid == first.reference_fid
    assert q.fid < q0.fid and q.reference_fid < q.fid
    assert sum(q.class_shares) == pytest.approx(1) and 0 <= q.classes_covered <= 10
    assert q.classifier == "clf" and q.classifier_accuracy == classifier_run.metrics["test"]["accuracy"]

    with pytest.raises(TypeError, match="generative"):
        quality.quality_report(build_model(aelab.preset("stacked").model, (1, 8, 8)), classifier_run.load_model(),
                               digits)


def test_cli_trains_a_gan_and_scores_it_with_the_stored_classifier(classifier_run, tmp_path):
    import shutil

    shutil.copytree(classifier_run.path, tmp_path / "clf")
    p = run_cli("train", "--preset", "dcgan", "--data", "digits",
                        "--channels", "8,16", "--epochs", "1", "--runs-dir", str(tmp_path), "--name", "dc", "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["status"] == "finished" and summary["quality"]["classifier"] == "clf"
    assert summary["quality"]["fid"] > 0 and "d_loss" in p.stderr
    ev = run_cli("eval", "dc", "--runs-dir", str(tmp_path))
    assert ev.returncode == 0 and "FID(domain)" in ev.stdout, ev.stderr


def test_real_images_from_outside_aelab_score_like_real_images(classifier_run, digits):
    """score_images scores any images (the benchmark's Keras samples): real training images cover every class
    and sit near the reference; their pixels shuffled cover fewer and sit far from it."""
    clf = classifier_run.load_model()
    real = aelab.data.to_float(digits.x_train[:500])
    q = quality.score_images(real, clf, digits)
    assert q.n_samples == 500 and q.classes_covered == 10
    assert q.fid == pytest.approx(q.reference_fid, rel=0.5)
    shuffled = real.reshape(500, -1)[:, torch.randperm(64, generator=torch.Generator().manual_seed(0))]
    noise = quality.score_images(shuffled.reshape(-1, 1, 8, 8), clf, digits)
    assert noise.fid > 5 * q.fid and noise.classes_covered < 10
