"""Continuing a run (2 + 1 epochs = 3 in one go), the β schedules and the active units."""
import json
import threading

import pytest
import torch

import aelab
from aelab.checkpoint import TENSORS, VALUES
from aelab.cli import main
from aelab.config import TrainConfig, with_overrides
from aelab.errors import ConfigError, RunError, SettingLimitError
from aelab.experiment import plan_resume, train_validated
from aelab.jobs import Registry
from aelab.train import Callback, beta_scale


def _cfg(preset: str, epochs: int, **overrides):
    cfg = aelab.preset(preset, "digits")
    if preset == "gan":
        cfg.model.hidden = (32, 16)
    return with_overrides(cfg, {"train.epochs": epochs, **overrides}).validate()


def _same_weights(a, b) -> float:
    wa, wb = a.state_dict(), b.state_dict()
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


@pytest.mark.parametrize("preset, overrides", [
    ("stacked", {}),                                                           # SGD
    ("vae", {"train.beta_schedule": "cyclical", "train.beta_epochs": 1.5}),   # RMSprop, sampling, the β clock
    ("gan", {"train.optimizer": "adam", "train.lr": 1e-3}),                   # two Adam optimisers
    ("stacked", {"train.precision": "fp16"}),                                 # fp16's GradScaler continues
])
def test_two_epochs_then_one_more_equal_three_in_one_go(tmp_path, digits, preset, overrides):
    full = train_validated(_cfg(preset, 3, **overrides), runs_dir=tmp_path, name="full", evaluate=False,
                           dataset=digits)
    two = train_validated(_cfg(preset, 2, **overrides), runs_dir=tmp_path, name="two", evaluate=False,
                          dataset=digits)
    assert (two.run.path / TENSORS).is_file() and (two.run.path / VALUES).is_file()
    cfg, resume = plan_resume(two.run, 1)
    assert cfg.train.epochs == 3 and cfg == full.run.config
    more = train_validated(cfg, runs_dir=tmp_path, evaluate=False, dataset=digits, resume=resume)

    a, b = full.run.history, more.run.history
    assert b["epoch"] == [1.0, 2.0, 3.0]
    for key in a:
        if "seconds" not in key:
            assert b[key] == pytest.approx(a[key], abs=1e-6), key
    assert _same_weights(full.model, more.model) < 1e-6
    if "train.precision" in overrides:   # fp16's GradScaler went on counting steps towards its next growth
        scalers = [json.loads((r.run.path / VALUES).read_text())["scaler"] for r in (two, full, more)]
        assert scalers[0]["_growth_tracker"] > 0 and scalers[2] == scalers[1]
    assert more.run.meta["resumed_from"] == {"run": "two", "epochs": 2.0, "fresh_optimizer": False,
                                             "stopped_mid_epoch": False}
    assert more.run.name.startswith("two-more-") and more.run.resumed_from["run"] == "two"
    ta, tb = full.run.timeline(), more.run.timeline()
    assert tb["frames"].shape == ta["frames"].shape   # the time-lapse goes on: 4 frames, before training and 3
    assert abs(tb["frames"] - ta["frames"]).max() < 1e-6
    if "codes" in ta:
        assert tb["codes"].shape == ta["codes"].shape and abs(tb["codes"] - ta["codes"]).max() < 1e-3


class _StopAfter(Callback):
    def __init__(self, epoch: int, batch: int, event: threading.Event):
        self.epoch, self.batch, self.event = epoch, batch, event

    def on_batch_end(self, state):
        if (state.epoch, state.batch) == (self.epoch, self.batch):
            self.event.set()


def test_a_run_stopped_mid_epoch_continues_with_the_next_epoch(tmp_path, digits):
    stop = threading.Event()
    stopped = train_validated(_cfg("stacked", 3), runs_dir=tmp_path, name="stopped", evaluate=False, dataset=digits,
                              callbacks=[_StopAfter(2, 4, stop)], stop_event=stop)
    batches = -(-len(digits.split(0.1).x_train) // 32)
    assert stopped.fit.status == "stopped" and stopped.run.epochs_done == pytest.approx(1 + 4 / batches)
    cfg, resume = plan_resume(stopped.run, 2)
    assert resume.checkpoint.stopped_mid_epoch and cfg.train.epochs == 4   # the stopped epoch counts
    more = train_validated(cfg, runs_dir=tmp_path, name="more", evaluate=False, dataset=digits, resume=resume)
    assert more.fit.status == "finished"
    assert more.run.history["epoch"] == pytest.approx([1, 1 + 4 / batches, 2 + 4 / batches, 3 + 4 / batches])
    assert more.run.meta["resumed_from"]["stopped_mid_epoch"] is True
    assert len(more.run.timeline()["frames"]) == 1 + 4   # before training, then one per row of the history


def test_a_run_without_its_training_state_needs_a_fresh_optimiser(tmp_path, digits):
    two = train_validated(_cfg("stacked", 2), runs_dir=tmp_path, name="old", evaluate=False, dataset=digits)
    for f in (TENSORS, VALUES):
        (two.run.path / f).unlink()   # as a run saved before AE Lab kept its state
    with pytest.raises(RunError, match="fresh optimiser"):
        plan_resume(two.run, 1)
    cfg, resume = plan_resume(two.run, 1, fresh_optimizer=True)
    more = train_validated(cfg, runs_dir=tmp_path, evaluate=False, dataset=digits, resume=resume)
    assert more.run.meta["resumed_from"]["fresh_optimizer"] is True
    assert more.run.history["epoch"] == [1.0, 2.0, 3.0]
    assert more.run.history["val_loss"][:2] == two.run.history["val_loss"]
    assert more.run.history["val_loss"][2] < two.run.history["val_loss"][1]   # it goes on learning
    assert more.run.has_checkpoint   # and can itself continue exactly


def test_a_damaged_training_state_is_one_line_and_trains_nothing(tmp_path, digits):
    two = train_validated(_cfg("stacked", 1), runs_dir=tmp_path, name="two", evaluate=False, dataset=digits)
    (two.run.path / VALUES).write_text("{not json")
    with pytest.raises(RunError, match="training state .* is damaged"):
        plan_resume(two.run, 1)
    # a moment the size of another model's: refused before any step, not a shape error mid-epoch
    from safetensors.torch import load_file, save_file

    other = train_validated(_cfg("stacked", 1), runs_dir=tmp_path, name="three", evaluate=False, dataset=digits).run
    tensors = load_file(str(other.path / TENSORS))
    doc = json.loads((other.path / VALUES).read_text())
    doc["optimizers"][0]["values"] = {}
    (other.path / VALUES).write_text(json.dumps(doc))
    tensors["opt0/0/momentum_buffer"] = torch.zeros(3, 3)
    save_file(tensors, str(other.path / TENSORS))
    cfg, resume = plan_resume(other, 1)
    with pytest.raises(RunError, match="momentum_buffer of parameter 0 has shape"):
        train_validated(cfg, runs_dir=tmp_path, evaluate=False, dataset=digits, resume=resume)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three", "two"]


def test_greedy_runs_and_bad_counts_do_not_continue(tmp_path, digits):
    cfg = with_overrides(aelab.preset("stacked", "digits"), {"train.greedy": True, "train.epochs": 1}).validate()
    greedy = train_validated(cfg, runs_dir=tmp_path, name="greedy", evaluate=False, dataset=digits)
    assert not greedy.run.has_checkpoint
    with pytest.raises(ConfigError, match="greedily"):
        plan_resume(greedy.run, 1)
    with pytest.raises(ConfigError, match="whole number >= 1"):
        plan_resume(greedy.run, 0)


def test_the_app_caps_the_total_epochs_of_a_continued_run(tmp_path, digits, monkeypatch):
    two = train_validated(_cfg("stacked", 2), runs_dir=tmp_path, name="two", evaluate=False, dataset=digits)
    cfg, _ = plan_resume(two.run, 3)
    monkeypatch.setenv("AELAB_MAX_EPOCHS", "4")
    with pytest.raises(SettingLimitError, match="5 epochs; the limit is 4"):
        Registry(max_jobs=1, warm=0).start(cfg, tmp_path, resume=(two.run, False))


def test_cli_resume(tmp_path, capsys):
    def run(*args):
        try:
            return main(["train", *args, "--runs-dir", str(tmp_path)])
        except SystemExit as e:   # argparse's usage errors
            return e.code

    assert run("--preset", "stacked", "--data", "digits", "--epochs", "1", "--name", "one", "--no-eval") == 0
    capsys.readouterr()
    assert run("--resume", "one", "--epochs", "1", "--lr", "3") == 2
    assert "--resume keeps the run's settings: drop --lr" in capsys.readouterr().err
    assert run("--resume", "one") == 2 and "--resume needs --epochs N" in capsys.readouterr().err
    assert run("--resume", "nope", "--epochs", "1") == 1 and "no run named 'nope'" in capsys.readouterr().err
    assert run("--resume", "one", "--epochs", "2", "--no-eval", "--json") == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["epochs"] == 3 and summary["resumed_from"]["run"] == "one"
    assert "continuing run one after 1 epochs, up to 3 epochs" in out.err


# ----------------------------------------------------------------------------------------- β schedules
def test_beta_schedules():
    warm = TrainConfig(beta_schedule="warmup", beta_epochs=2.0)
    assert [beta_scale(warm, s, 10) for s in (0, 5, 10, 19, 20, 100)] == pytest.approx([0, .25, .5, .95, 1, 1])
    cyc = TrainConfig(beta_schedule="cyclical", beta_epochs=2.0)   # 20 steps a cycle: 10 rising, 10 flat
    assert [beta_scale(cyc, s, 10) for s in (0, 5, 10, 15, 19, 20, 25, 45)] == \
        pytest.approx([0, .5, 1, 1, 1, 0, .5, .5])
    assert beta_scale(TrainConfig(), 0, 10) == 1.0


def test_beta_schedule_settings_are_checked():
    vae = aelab.preset("vae", "digits")
    with pytest.raises(ConfigError, match="needs the variational objective"):
        with_overrides(aelab.preset("stacked"), {"train.beta_schedule": "warmup", "train.beta_epochs": 1}).validate()
    with pytest.raises(ConfigError, match="beta_epochs must be in"):
        with_overrides(vae, {"train.beta_schedule": "warmup"}).validate()
    with pytest.raises(ConfigError, match="a setting of a beta schedule"):
        with_overrides(vae, {"train.beta_epochs": 3}).validate()


def test_warmup_starts_from_zero_and_validation_keeps_beta(tmp_path, digits):
    """β = 0 over a whole (very long) warm-up's first epoch: the training loss is the reconstruction alone,
    while validation weighs the KL with β itself, as a run without a schedule does."""
    cfg = _cfg("vae", 1, **{"train.beta_schedule": "warmup", "train.beta_epochs": 1000.0})
    exp = train_validated(cfg, runs_dir=tmp_path, name="warm", evaluate=False, dataset=digits)
    h = exp.run.history
    assert h["beta"][0] < 1e-3 and h["loss"][0] == pytest.approx(h["recon"][0], rel=1e-3)
    assert h["val_loss"][0] > h["val_recon"][0] + 0.9 * h["val_kl"][0] / 64   # KL at β = 1 (8 x 8 pixels)
    assert h["val_nelbo"][0] == pytest.approx(h["val_recon"][0] * 64 + h["val_kl"][0], rel=1e-5)
    assert 0 <= h["active_units"][0] <= cfg.model.latent
