"""The house rules hold: thin pages, one-way imports, one validation per entry point, a clean repository;
and the bugs the architecture review found stay fixed."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import aelab
from aelab import metrics
from conftest import app, png_bytes, zip_bytes

ROOT = Path(__file__).resolve().parents[1]
PAGE_FILES = sorted((ROOT / "pages").rglob("*.py"))


def test_pages_are_thin():
    torch_import = re.compile(r"^\s*(import|from) torch", re.M)
    assert [p.name for p in PAGE_FILES if torch_import.search(p.read_text())] == []
    assert {p.name: n for p in PAGE_FILES if (n := len(p.read_text().splitlines())) >= 200} == {}


def test_lint_fails_on_an_import_that_goes_the_wrong_way(tmp_path):
    """A scratch copy where the models import the experiment layer above them: lint-imports says no."""
    lint = str(Path(sys.executable).with_name("lint-imports"))   # installed beside pytest (requirements-dev)
    for name in ("aelab", "pages"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    clean = subprocess.run([lint], cwd=tmp_path, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout
    base = tmp_path / "aelab" / "models" / "base.py"
    base.write_text(base.read_text() + "\nfrom ..experiment import train  # noqa: E402,F401\n")
    broken = subprocess.run([lint], cwd=tmp_path, capture_output=True, text=True)
    assert broken.returncode != 0 and "aelab.models.base -> aelab.experiment" in broken.stdout


def test_the_server_leaves_what_only_workers_need_unimported():
    """The pages' modules (the server's) import neither scikit-learn, SciPy, torchvision nor torch._dynamo, which only
    the workers' tasks and training use: 80 + 75 MB that a server started by plain `streamlit run` (or AppTest)
    does without. (`make run`'s server imports them on purpose, once, to share them with its workers.)"""
    code = ("import importlib, pkgutil, sys; import aelab.jobs, aelab.tasks, pages.shared as p\n"
            "for m in pkgutil.iter_modules(p.__path__): importlib.import_module('pages.shared.' + m.name)\n"
            "print(*[m for m in ('sklearn', 'scipy', 'torchvision', 'torch._dynamo') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr[-2000:]


def test_a_worker_leaves_the_app_unimported():
    """Streamlit leaves the app's script as the server's __main__, and multiprocessing imports a parent's __main__
    into each worker it starts (as __mp_main__): the script's guard keeps the app, Streamlit and the pages out
    (without it, every worker ran the Home page in Streamlit's bare mode: 80 MB and half a second)."""
    code = ("import runpy, sys; runpy.run_path('streamlit_app.py', run_name='__mp_main__')\n"
            "print(*[m for m in sys.modules if m.split('.')[0] in ('streamlit', 'pages')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr[-2000:]


def test_repository_holds_no_build_outputs():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [f for f in tracked if f.endswith((".whl", ".pyc", ".egg-info"))]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {"*.whl", "dist/", "build/", ".coverage", "site/"} <= set(ignored)
    docker = (ROOT / ".dockerignore").read_text().split()
    assert {".pytest_cache", "data", "tests", "docs"} <= set(docker)


def test_the_start_button_validates_once(monkeypatch, tmp_path, app_router):
    """Form -> registry -> job -> experiment -> model -> trainer -> optimiser: one validation, at the form."""
    from streamlit.testing.v1 import AppTest

    from aelab import config, optim
    from aelab.jobs import registry

    monkeypatch.setenv("AELAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("AELAB_EXAMPLES_DIR", str(tmp_path / "no-examples"))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.session_state["dataset"] = "digits"
    at.run()
    at.switch_page("pages/train.py").run()
    at.text_input(key="f_hidden").set_value("16")
    at.number_input(key="f_epochs").set_value(1).run()

    _run_workers_in_this_process(monkeypatch)
    calls, at_optimiser = [], []
    for cls in (config.RunConfig, config.DataConfig, config.AutoencoderConfig, config.TrainConfig):
        original = cls.validate
        monkeypatch.setattr(cls, "validate", lambda self, _o=original, _c=cls: (calls.append(_c.__name__), _o(self))[1])
    make = optim.make_optimizer
    monkeypatch.setattr("aelab.models.base.make_optimizer",
                        lambda params, cfg: (at_optimiser.append(list(calls)), make(params, cfg))[1])
    at.button(key="start").click().run()
    assert not at.exception
    job = registry().get(at.session_state["job_id"])
    assert job.join(120) and job.snapshot().status == "finished"
    assert at_optimiser == [["RunConfig", "DataConfig", "AutoencoderConfig", "TrainConfig"]]


def _run_workers_in_this_process(monkeypatch) -> None:
    """Jobs run aelab.worker.run in a thread here instead of a process, so that this test's counters see
    the worker's side too (no nice, no memory cap: they would apply to the test process)."""
    import socket
    import threading
    from multiprocessing.connection import Connection

    from aelab import jobs, worker

    class ThreadWorker(jobs.Worker):
        def __init__(self):
            ours, theirs = socket.socketpair()
            self.conn, self.ready, self.error = Connection(ours.detach()), threading.Event(), None
            self.thread = threading.Thread(target=worker.run, args=(Connection(theirs.detach()),), daemon=True)
            self.thread.start()

        def kill(self):
            self.thread.join(60)
            self.conn.close()

    threads = torch.get_num_threads()
    monkeypatch.setattr(jobs, "Worker", ThreadWorker)
    monkeypatch.setattr(jobs, "NICE", 0)
    monkeypatch.setenv("AELAB_MAX_WORKER_MB", "inf")
    monkeypatch.setattr(jobs, "_registry", jobs.Registry(warm=0))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    assert torch.get_num_threads() == threads


def test_python_and_cli_entry_points_validate(tmp_path):
    cfg = aelab.preset("stacked", "digits")
    cfg.train.epochs = 0   # edited after preset(), as the README does: aelab.train checks it
    with pytest.raises(aelab.ConfigError, match="train.epochs"):
        aelab.train(cfg, runs_dir=tmp_path)


@pytest.mark.parametrize("n", [1, 3, 13, 20])
def test_pairs_of_any_number_of_images(n, digits):
    """The worst-reconstructed images used to be reshaped to 2 x 10: fewer than 20 test images failed."""
    model = aelab.build_model(aelab.preset("stacked").model, digits.image_shape)
    images, ncols = metrics.pairs(model, digits.x_test[:n])
    rows = -(-n // ncols)
    assert ncols == min(10, n) and images.shape == (2 * rows * ncols, 8, 8)
    first_row = images[:ncols]
    assert np.allclose(first_row[:min(n, ncols)], digits.x_test[:min(n, ncols), 0].float().numpy() / 255)
    if n % ncols:
        assert (images[-1] == 1).all()   # the short last row is padded with white


@pytest.fixture
def env(tmp_path, monkeypatch, app_router):
    monkeypatch.setenv("AELAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("AELAB_EXAMPLES_DIR", str(tmp_path / "no-examples"))
    monkeypatch.setenv("AELAB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "runs"


@pytest.mark.parametrize("page", ["pages/reconstructions.py", "pages/latent.py"])
def test_pages_show_a_run_with_its_own_image_size(env, tmp_path, digits, page):
    """A run trained on a .zip resized to 12 pixels is shown against 12-pixel images (the run's data config)."""
    path = tmp_path / "shapes.zip"
    path.write_bytes(zip_bytes({f"{'small' if digits.y_train[i] < 5 else 'large'}/{i}.png":
                                png_bytes(digits.x_train[i, 0].numpy()) for i in range(60)}))
    cfg = aelab.preset("stacked", str(path))
    cfg.data.image_size, cfg.model.hidden, cfg.train.epochs, cfg.train.batch_size = 12, (16,), 1, 8
    run = aelab.train(cfg, runs_dir=env, name="zip12").run
    assert run.image_shape == (1, 12, 12)
    at = app(page, active_run="run:zip12")
    assert not at.error, [e.value for e in at.error]


def test_reconstructions_page_with_three_test_images(env, tmp_path, digits):
    path = tmp_path / "few.npz"
    np.savez(path, images=digits.x_train[:20, 0].numpy(), labels=digits.y_train[:20].numpy())
    cfg = aelab.preset("stacked", str(path))
    cfg.model.hidden, cfg.train.epochs, cfg.train.batch_size = (16,), 1, 4
    run = aelab.train(cfg, runs_dir=env, name="few").run
    assert run.metrics["test"] and len(aelab.load_dataset(cfg.data).x_test) == 3
    at = app("pages/reconstructions.py", active_run="run:few")
    assert all(t.join(120) for t in aelab.jobs.registry().tasks())   # scoring the test set, in a worker
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert any("3 worst-reconstructed" in m.value for m in at.markdown)


def test_models_take_the_rng_they_are_given(digits):
    model = aelab.build_model(aelab.preset("denoising-dropout").model, digits.image_shape).train()
    x = aelab.data.to_float(digits.x_train[:16])
    a = model(x, rng=torch.Generator().manual_seed(1)).loss
    b = model(x, rng=torch.Generator().manual_seed(1)).loss
    c = model(x, rng=torch.Generator().manual_seed(2)).loss
    assert a == b and a != c
    assert not hasattr(model, "rng")
