"""Unsupervised pretraining studies on digits: the variants, the subsets, the store, the CLI, the job and the page."""
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import aelab
from aelab import pretrain
from aelab.config import AutoencoderConfig, StudyConfig
from aelab.errors import ConfigError, RunError
from aelab.jobs import Registry
from aelab.runs import RunStore, find_run
from conftest import app, run_cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = dict(epochs=2, min_steps=30)   # a study on digits in seconds


@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory):
    """A small stacked AE on digits (the encoder every test pretrains with)."""
    cfg = aelab.preset("stacked", "digits")
    cfg.model = AutoencoderConfig(hidden=(32,), latent=8)
    cfg.train.epochs = 3
    return aelab.train(cfg, runs_dir=tmp_path_factory.mktemp("enc"), name="enc", evaluate=False).run


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_balanced_subsets_are_balanced_and_seeded(digits):
    y = digits.y_train.numpy()
    idx = pretrain.balanced_subset(y, 50, 10, seed=0)
    assert len(idx) == len(set(idx)) == 50 and np.bincount(y[idx], minlength=10).tolist() == [5] * 10
    assert np.array_equal(idx, pretrain.balanced_subset(y, 50, 10, seed=0))
    assert not np.array_equal(idx, pretrain.balanced_subset(y, 50, 10, seed=1))
    counts = np.bincount(y[pretrain.balanced_subset(y, 13, 10, seed=3)], minlength=10)
    assert counts.sum() == 13 and set(counts) == {1, 2}
    with pytest.raises(ConfigError, match="needs"):
        pretrain.balanced_subset(y, 5000, 10, seed=0)


def test_frozen_keeps_the_encoder_finetuned_changes_it_scratch_starts_fresh(encoder_run, digits):
    model = encoder_run.load_model()
    pretrained = weights(model)
    cfg = StudyConfig(**QUICK).validate()
    x, y = digits.x_train[:40], digits.y_train[:40]
    nets = {}
    for variant in pretrain.NETWORK_VARIANTS:
        net = nets[variant] = pretrain.build_network(variant, model, 10, cfg, seed=0)
        before_head = weights(net.head)
        encoder_before = weights(net.encoder)
        curve = pretrain.fit(net, variant, x, y, cfg, seed=0)
        assert 1 <= len(curve) <= pretrain.LOSS_POINTS and curve[-1] < curve[0]   # it learned
        assert not same(before_head, weights(net.head))
        if variant == "scratch":
            assert not same({k: v for k, v in encoder_before.items() if k in pretrained},
                            {k: v for k, v in pretrained.items() if k in encoder_before})
        else:
            assert all(torch.equal(encoder_before[k], pretrained[k]) for k in encoder_before if k in pretrained)
        after = weights(net.encoder)
        changed = not all(torch.equal(after[k], encoder_before[k]) for k in after)
        assert changed == (variant != "frozen"), variant
    assert same(pretrained, weights(model))   # the run's own model is never trained
    heads = [weights(pretrain.build_network(v, model, 10, cfg, seed=0).head) for v in pretrain.NETWORK_VARIANTS]
    assert same(heads[0], heads[1]) and same(heads[1], heads[2])   # one head for all three
    assert 0 <= pretrain.accuracy(nets["frozen"], digits.x_test, digits.y_test) <= 1


def test_a_study_on_digits_saves_every_variant_and_budget_reproducibly(encoder_run, tmp_path):
    cfg = StudyConfig(labels=(10, 40), seeds=2, **QUICK).validate()
    seen = []
    study = pretrain.run_study([encoder_run], cfg, runs_dir=tmp_path, progress=seen.append)
    assert [p.done for p in seen] == list(range(1, 17)) and seen[-1].total == 16 == len(study.fits)
    rows = pretrain.summarize(study.fits)
    assert {(r["labels"], r["variant"]) for r in rows} == {(n, v) for n in (10, 40) for v in pretrain.VARIANTS}
    for r in rows:
        assert len(r["seeds"]) == 2 and all(0 <= a <= 1 for a in r["seeds"])
        assert r["mean"] == pytest.approx(np.mean(r["seeds"])) and r["std"] == pytest.approx(np.std(r["seeds"], ddof=1))
    by_seed = {(f["variant"], f["labels"], f["seed"]): f["accuracy"] for f in study.fits}
    assert any(by_seed[(v, n, 0)] != by_seed[(v, n, 1)] for v in pretrain.VARIANTS for n in (10, 40))
    again = pretrain.run_study([encoder_run], cfg, runs_dir=tmp_path)
    assert [f["accuracy"] for f in again.fits] == [f["accuracy"] for f in study.fits]
    # the store: a study is listed apart, reloads, is never a model, zips, deletes
    store = RunStore(tmp_path)
    assert {s.name for s in store.scan_studies()[0]} == {study.name, again.name} and store.scan() == ([], {})
    loaded = store.open_study(study.name)
    assert loaded.fits == study.fits and loaded.config == cfg and not loaded.can("encode")
    with pytest.raises(RunError, match="pretraining study"):
        store.open(study.name)
    assert b"results.json" in loaded.archive()
    store.delete(study.name)
    assert [s.name for s in store.scan_studies()[0]] == [again.name]


def test_damaged_studies_are_reported_and_wrong_encoders_refused(encoder_run, tmp_path):
    cfg = StudyConfig(labels=(10,), seeds=1, **QUICK).validate()
    study = pretrain.run_study([encoder_run], cfg, runs_dir=tmp_path, name="s1")
    results = json.loads((study.path / "results.json").read_text())
    results["fits"][0]["accuracy"] = 7
    (study.path / "results.json").write_text(json.dumps(results))
    studies, problems = RunStore(tmp_path).scan_studies()
    assert studies == [] and "accuracy must be a number in [0, 1]" in problems["s1"]
    with pytest.raises(ConfigError, match="each encoder run once"):
        pretrain.run_study([encoder_run, encoder_run], cfg, runs_dir=tmp_path)
    gan = aelab.preset("gan", "digits")
    gan.train.epochs = 1
    with pytest.raises(ConfigError, match="not an autoencoder"):
        pretrain.check_encoders([aelab.train(gan, runs_dir=tmp_path, evaluate=False).run])
    with pytest.raises(ConfigError, match="more than"):
        pretrain.run_study([encoder_run], StudyConfig(labels=(5000,), **QUICK).validate(), runs_dir=tmp_path)
    for bad in ({"labels": ()}, {"labels": (10, 10)}, {"seeds": 0}, {"head": "deep"}, {"lr": float("nan")}):
        with pytest.raises(ConfigError):
            StudyConfig(**bad).validate()


def test_the_cli_prints_one_json_object_with_every_budget_and_variant(encoder_run, tmp_path):
    shutil.copytree(encoder_run.path, tmp_path / encoder_run.name)   # its study lands beside it, not in the fixture's
    out = run_cli("pretrain", "--encoder", "enc", "--labels", "10,30", "--seeds", "2", "--seed", "5", "--epochs", "2",
                  "--min-steps", "30", "--head", "mlp", "--runs-dir", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)   # exactly one object on stdout
    assert doc["run"].startswith("pretrain-digits-") and doc["config"]["head"] == "mlp"
    assert {(r["labels"], r["variant"]) for r in doc["results"]} == \
        {(n, v) for n in (10, 30) for v in ("scratch", "frozen", "finetuned", "pixels")}
    assert all(len(r["seeds"]) == 2 and set(r) >= {"labels", "variant", "mean", "std", "seeds"} for r in doc["results"])
    bad = run_cli("pretrain", "--encoder", "nope", "--runs-dir", str(tmp_path))
    assert bad.returncode == 1 and "no run named 'nope'" in bad.stderr


def test_a_study_runs_as_a_job_in_a_worker(encoder_run, tmp_path):
    registry = Registry(max_jobs=1)
    try:
        cfg = StudyConfig(labels=(10, 20), seeds=1, **QUICK).validate()
        job = registry.start_study([encoder_run], cfg, tmp_path, owner="me")
        queued = registry.start_study([encoder_run], cfg, tmp_path, owner="me")
        assert queued.snapshot().status == "queued" and queued.snapshot().position == 1
        registry.cancel(queued)
        assert job.join(300) and queued.snapshot().status == "cancelled"
        snap = job.snapshot()
        assert snap.status == "finished" and snap.fits_done == snap.fits_total == 8 and len(snap.fits) == 8
        assert RunStore(tmp_path).open_study(snap.run_name).fits == snap.fits
    finally:
        registry.close()


@pytest.mark.usefixtures("app_router")
def test_the_pretraining_page_without_and_with_encoder_runs(encoder_run, tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_EXAMPLES_DIR", str(tmp_path / "no-examples"))
    monkeypatch.setenv("AELAB_RUNS_DIR", str(tmp_path / "empty"))
    at = app("pages/pretrain.py")
    assert "No autoencoder run" in at.info[0].value
    monkeypatch.setenv("AELAB_RUNS_DIR", str(encoder_run.path.parent))
    pretrain.run_study([encoder_run], StudyConfig(labels=(10, 20), seeds=2, **QUICK).validate(),
                       runs_dir=encoder_run.path.parent, name="study-page")
    at = app("pages/pretrain.py")
    assert at.multiselect(key="pre_encoders").value == ["run:enc"]
    assert at.selectbox(key="pre_study").value == "run:study-page"
    assert any("fine-tuning beat training from scratch" in m.value for m in at.markdown)
    at = app("pages/runs.py")
    assert at.selectbox(key="studies_manage").value == "run:study-page"
    assert not any(o == "run:study-page" for o in at.selectbox(key="runs_manage").options)


def test_a_stopped_study_job_saves_nothing_and_says_so(encoder_run, tmp_path):
    registry = Registry(max_jobs=1)
    try:
        cfg = StudyConfig(labels=(10, 20, 30), seeds=3, **QUICK).validate()
        job = registry.start_study([encoder_run], cfg, tmp_path, owner="me")
        deadline = time.time() + 120
        while job.snapshot().fits_done == 0 and time.time() < deadline:
            time.sleep(0.05)
        registry.cancel(job)   # a running study stops after the current fit
        assert job.join(120)
        snap = job.snapshot()
        assert snap.status == "stopped" and snap.fits_done < snap.fits_total == 36
        assert "nothing was saved" in snap.error and RunStore(tmp_path).scan_studies() == ([], {})
    finally:
        registry.close()


def test_an_encoder_is_looked_up_in_the_runs_then_the_examples(encoder_run, tmp_path, monkeypatch):
    examples = tmp_path / "examples"
    shutil.copytree(encoder_run.path, examples / "shipped")
    monkeypatch.setenv("AELAB_EXAMPLES_DIR", str(examples))
    assert find_run("enc", encoder_run.path.parent).path == encoder_run.path
    assert find_run("shipped", tmp_path / "mine").read_only
    assert pretrain.pretrainable(encoder_run)
    with pytest.raises(RunError, match="no run named 'gone'"):
        find_run("gone", tmp_path / "mine")


def test_beats_scratch_lists_the_budgets_where_pretraining_won():
    rows = [{"encoder": "e", "labels": n, "variant": v, "mean": m} for n, v, m in
            [(10, "scratch", .5), (10, "finetuned", .6), (10, "frozen", .4),
             (50, "scratch", .5), (50, "finetuned", .4), (50, "frozen", .7)]] + \
        [{"encoder": None, "labels": 10, "variant": "pixels", "mean": .9}]
    assert pretrain.beats_scratch(rows) == {"e": {"budgets": [10, 50], "finetuned": [10], "frozen": [50]}}
