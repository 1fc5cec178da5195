import json
import shutil

import numpy as np
import pytest
import torch

import aelab
from aelab.config import AutoencoderConfig
from aelab.runs import RunError, RunStore, check_name


@pytest.fixture
def run_cfg():
    cfg = aelab.preset("stacked", data="digits")
    cfg.model = AutoencoderConfig(hidden=(16,), latent=4)
    cfg.train.epochs, cfg.train.lr = 1, 0.5
    return cfg


def test_train_saves_a_complete_run(run_cfg, tmp_path, digits):
    exp = aelab.train(run_cfg, runs_dir=tmp_path, name="first")
    run = RunStore(tmp_path).open("first")
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "history.json", "metrics.json",
                                                         "model.safetensors", "timeline.safetensors",
                                                         "train_state.json", "train_state.safetensors"]
    timeline = run.timeline()   # the preview before training and after the epoch, stored as uint8
    assert timeline["frames"].shape == (2, 8, 8, 8) and timeline["inputs"].shape == (8, 8, 8)
    assert np.abs(timeline["frames"][-1] - exp.previews.latest).max() <= 0.5 / 255 + 1e-6
    assert run.config == run_cfg and run.meta["status"] == "finished" and run.meta["image_shape"] == [1, 8, 8]
    assert run.final_val_loss == exp.fit.history["val_loss"][-1]
    assert set(run.metrics["test"]) == {"bce", "mse", "psnr", "ssim"}
    assert 0 <= run.metrics["probes"]["codes"]["knn"] <= 1
    x = aelab.data.to_float(digits.x_test[:5])
    assert torch.allclose(run.load_model().encode(x), exp.run.load_model().encode(x))


def test_names_are_validated_and_never_overwritten(run_cfg, tmp_path):
    for bad in ["../escape", "a/b", "", ".hidden", "x" * 81, "semi;colon"]:
        with pytest.raises(RunError, match="invalid run name"):
            check_name(bad)
    aelab.train(run_cfg, runs_dir=tmp_path, name="taken", evaluate=False)
    with pytest.raises(RunError, match="exists already"):
        aelab.train(run_cfg, runs_dir=tmp_path, name="taken", evaluate=False)


def test_default_names_are_unique(run_cfg, tmp_path):
    a = aelab.train(run_cfg, runs_dir=tmp_path, evaluate=False).run.name
    b = aelab.train(run_cfg, runs_dir=tmp_path, evaluate=False).run.name
    assert a != b and a.startswith("stacked-digits-")


def test_damaged_runs_do_not_break_the_listing(run_cfg, tmp_path):
    aelab.train(run_cfg, runs_dir=tmp_path, name="good", evaluate=False)
    store = RunStore(tmp_path)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hi")
    bad_json = tmp_path / "bad-json"
    bad_json.mkdir()
    for f in ("config.json", "history.json", "metrics.json", "model.safetensors"):
        (bad_json / f).write_text("{")
    (tmp_path / ".tmp-half-written-xyz").mkdir()   # an interrupted save: hidden, ignored
    bad_dist = tmp_path / "bad-dist"   # a valid run whose meta says it trained on {"world_size": "many"}
    shutil.copytree(tmp_path / "good", bad_dist)
    config = json.loads((bad_dist / "config.json").read_text())
    config["meta"]["distributed"] = {"world_size": "many", "backend": "gloo", "devices": []}
    (bad_dist / "config.json").write_text(json.dumps(config))
    runs, problems = store.scan()
    assert [r.name for r in runs] == ["good"] and runs[0].trained_on == "cpu"
    assert "incomplete" in problems["foreign"] and "damaged" in problems["bad-json"]
    assert "meta.distributed" in problems["bad-dist"]
    assert ".tmp-half-written-xyz" not in problems


def test_weights_that_do_not_match_give_a_run_error(run_cfg, tmp_path):
    run = aelab.train(run_cfg, runs_dir=tmp_path, name="r", evaluate=False).run
    doc = json.loads((run.path / "config.json").read_text())
    doc["config"]["model"]["latent"] = 5
    (run.path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(RunError, match="cannot load model.safetensors"):
        RunStore(tmp_path).open("r").load_model()
    (run.path / "model.safetensors").write_bytes(b"\x80\x04pickle")
    with pytest.raises(RunError, match="cannot load"):
        RunStore(tmp_path).open("r").load_model()


def test_archive_holds_the_run(run_cfg, tmp_path):
    import io
    import zipfile

    run = aelab.train(run_cfg, runs_dir=tmp_path, name="zipped", evaluate=False).run
    names = zipfile.ZipFile(io.BytesIO(run.archive())).namelist()
    assert sorted(names) == sorted(f"zipped/{f}" for f in ("config.json", "history.json", "metrics.json",
                                                            "model.safetensors", "timeline.safetensors",
                                                            "train_state.json", "train_state.safetensors"))


def test_rename_delete_and_read_only(run_cfg, tmp_path):
    aelab.train(run_cfg, runs_dir=tmp_path, name="one", evaluate=False)
    store = RunStore(tmp_path)
    assert store.rename("one", "two").name == "two"
    with pytest.raises(RunError, match="invalid run name"):
        store.rename("two", "../three")
    with pytest.raises(RunError, match="read-only"):
        RunStore(tmp_path, read_only=True).delete("two")
    store.delete("two")
    assert store.names() == []
    with pytest.raises(RunError, match="no run named"):
        store.open("two")


def test_stopped_run_is_saved_consistently(run_cfg, tmp_path):
    import threading

    stop = threading.Event()

    class StopSoon(aelab.Callback):
        def on_batch_end(self, state):
            if state.batch == 2:
                stop.set()

    run_cfg.train.epochs = 3
    aelab.train(run_cfg, runs_dir=tmp_path, name="stopped", callbacks=[StopSoon()], stop_event=stop)
    run = RunStore(tmp_path).open("stopped")
    assert run.meta["status"] == "stopped" and run.meta["stopped_at"] == [1, 2]
    assert 0 < run.epochs_done < 1 and run.load_model() is not None


def test_cleanup_of_idle_visitor_sessions(tmp_path):
    import os
    import time

    from aelab.runs import cleanup_sessions

    old, fresh = tmp_path / "old", tmp_path / "fresh"
    for d in (old, fresh):
        (d / "run").mkdir(parents=True)
    past = time.time() - 3 * 3600
    for p in (old, old / "run"):
        os.utime(p, (past, past))
    assert cleanup_sessions(tmp_path, 3600) == 1
    assert not old.exists() and fresh.exists()
