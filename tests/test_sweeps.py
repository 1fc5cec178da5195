"""Sweeps (one or two settings varied, every run a job) and the table of settings against results."""
import pytest

import aelab
from aelab import figures
from aelab.config import with_overrides
from aelab.errors import ConfigError, SettingLimitError
from aelab.jobs import JobRefused, Registry
from aelab.sweeps import MAX_SWEEP_RUNS, hparam_rows, parse_values, plan_sweep, sweepable


def test_plan_sweep_is_every_combination_validated():
    cfg = aelab.preset("stacked", "digits")
    planned = plan_sweep(cfg, {"lr": ["0.1", "1.5"], "latent": ["2", "8", "30"]}, stamp="T")
    assert len(planned) == 6
    assert [(c.train.lr, c.model.latent) for _, c in planned] == [
        (0.1, 2), (0.1, 8), (0.1, 30), (1.5, 2), (1.5, 8), (1.5, 30)]
    assert planned[0][0] == "sweep-stacked-T-lr0.1-latent2"
    assert all(c.train.epochs == cfg.train.epochs and c.model.hidden == cfg.model.hidden for _, c in planned)
    aelab.runs.check_name(planned[-1][0])


def test_plan_sweep_refuses_what_it_cannot_run():
    cfg = aelab.preset("stacked", "digits")
    with pytest.raises(ConfigError, match="the learning rate must be > 0"):
        plan_sweep(cfg, {"lr": ["0.1", "-1"]})
    with pytest.raises(ConfigError, match="cannot vary 'codings'"):   # a GAN's setting
        plan_sweep(cfg, {"codings": ["2"]})
    with pytest.raises(ConfigError, match="cannot vary 'epochs'"):
        plan_sweep(cfg, {"epochs": ["2"]})
    with pytest.raises(ConfigError, match=f"at most {MAX_SWEEP_RUNS}"):
        plan_sweep(cfg, {"lr": parse_values("1,2,3,4,5"), "seed": parse_values("1,2,3,4")})
    with pytest.raises(ConfigError, match="1 to 8 comma-separated values"):
        parse_values(" , ")
    assert parse_values("0.1, 0.1 ,1") == ["0.1", "1"]
    assert "codings" in sweepable("gan") and "latent" not in sweepable("gan") and "lr" in sweepable("classifier")


def test_a_sweep_queues_all_its_runs_or_none(tmp_path, monkeypatch):
    planned = plan_sweep(aelab.preset("stacked", "digits"), {"seed": ["1", "2", "3"]})
    reg = Registry(max_jobs=1, warm=0, max_per_visitor=2)
    with pytest.raises(JobRefused, match="these 3 would make 3, the limit per visitor is 2"):
        reg.start_sweep(planned, tmp_path, owner="visitor")
    monkeypatch.setenv("AELAB_MAX_EPOCHS", "5")
    with pytest.raises(SettingLimitError):
        Registry(max_jobs=1, warm=0).start_sweep(planned, tmp_path, owner="visitor")
    assert reg._jobs == {}


def test_a_two_run_sweep_trains_both(tmp_path, digits):
    cfg = with_overrides(aelab.preset("stacked", "digits"), {"train.epochs": 1, "hidden": "16"}).validate()
    reg = Registry(max_jobs=1, warm=0)
    try:
        jobs = reg.start_sweep(plan_sweep(cfg, {"latent": ["2", "4"]}), tmp_path, owner="v")
        assert [j.snapshot().status for j in jobs] == ["starting", "queued"]   # one slot: the second waits
        assert all(j.join(120) for j in jobs)
        assert [j.snapshot().status for j in jobs] == ["finished", "finished"], [j.snapshot().error for j in jobs]
    finally:
        reg.close()
    runs = aelab.RunStore(tmp_path).scan()[0]
    rows, settings, metrics = hparam_rows(runs)
    assert settings == ["latent"] and {r["latent"] for r in rows} == {2, 4}
    assert "val loss" in metrics and "test mse" in metrics


def test_hparam_rows_keep_what_differs_and_what_all_have(tmp_path, digits):
    cfgs = [with_overrides(aelab.preset("stacked", "digits"), {"train.epochs": 1, "hidden": h, "optimizer": o})
            for h, o in (("16", "sgd"), ("8,4", "adam"))]
    runs = [aelab.train(c, runs_dir=tmp_path, name=f"r{i}", evaluate=False, dataset=digits).run
            for i, c in enumerate(cfgs)]
    rows, settings, metrics = hparam_rows(runs)
    assert settings == ["hidden", "optimizer"]
    assert [r["hidden"] for r in rows] == ["16", "8,4"] and metrics == ["val loss", "val rounded acc"]
    fig = figures.parallel_figure(rows, settings, metrics)
    dims = fig.data[0].dimensions
    assert [d.label for d in dims] == [*settings, *metrics]
    assert list(dims[0].ticktext) == ["16", "8,4"] and list(dims[0].values) == [0, 1]
