"""Streamlit AppTest: every page, with no run and with small trained runs; widgets change the output."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import aelab
from aelab.config import AutoencoderConfig
from aelab.jobs import registry
from conftest import app

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
TIMEOUT = 120  # the first run imports torch; t-SNE and probes take seconds
PAGES = ["pages/home.py", "pages/train.py", "pages/reconstructions.py", "pages/latent.py", "pages/generate.py",
         "pages/runs.py"]


pytestmark = pytest.mark.usefixtures("app_router")   # see conftest


@pytest.fixture
def env(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("AELAB_RUNS_DIR", str(runs))
    monkeypatch.setenv("AELAB_EXAMPLES_DIR", str(tmp_path / "no-examples"))
    return runs


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """A small plain AE and a 2-D VAE on digits, trained once for the module."""
    root = tmp_path_factory.mktemp("app-runs")
    ae = aelab.preset("denoising-gaussian", "digits")
    ae.model = AutoencoderConfig(hidden=(32,), latent=8, noise="gaussian", noise_level=0.2)
    ae.train.epochs = 2
    aelab.train(ae, runs_dir=root, name="ae-small")
    vae = aelab.preset("vae", "digits")
    vae.model = AutoencoderConfig(hidden=(32,), latent=2, variational=True, code_activation="linear")
    vae.train.epochs, vae.train.batch_size, vae.train.lr = 3, 32, 3e-3
    aelab.train(vae, runs_dir=root, name="vae-2d")
    gan = aelab.preset("gan", "digits")
    gan.model.hidden, gan.train.epochs = (32, 16), 3
    aelab.train(gan, runs_dir=root, name="gan-small")
    return root


@pytest.fixture
def classifier(with_runs, digits_classifier):
    """The domain classifier of the quality measure, among the runs for one test."""
    import shutil

    path = shutil.copytree(digits_classifier.path, with_runs / digits_classifier.name)
    yield aelab.RunStore(with_runs).open(digits_classifier.name)
    shutil.rmtree(path)


@pytest.fixture
def with_runs(env, trained_runs, monkeypatch):
    monkeypatch.setenv("AELAB_RUNS_DIR", str(trained_runs))
    return trained_runs


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_runs(env, page):
    at = app(page)
    assert not at.error, [e.value for e in at.error]
    if page in ("pages/reconstructions.py", "pages/latent.py", "pages/generate.py"):
        assert "No run yet" in at.info[0].value


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_runs(with_runs, page):
    at = app(page, active_run="run:ae-small")
    assert not at.error, [e.value for e in at.error]
    # the shared sidebar (drawn by the router) offers the runs and the data sets
    assert {o.split(" ")[0] for o in at.sidebar.selectbox(key="sidebar_run").options} == {"ae-small", "vae-2d",
                                                                                           "gan-small"}
    assert at.sidebar.selectbox(key="sidebar_run").value == "run:ae-small"
    assert "digits" in at.sidebar.selectbox(key="dataset").options


def test_home_lists_recipes_and_runs(with_runs):
    at = app()
    assert at.title[0].value == "AE Lab"
    assert {b.label for b in at.button} >= set(aelab.PRESETS)
    assert any("ae-small" in m.value for m in at.markdown)


def test_train_form_follows_the_recipe_and_the_url(env):
    at = app("pages/train.py")
    assert len(at.get("plotly_chart")) == 1   # before Start: the empty chart the losses will be drawn in
    assert at.text_input(key="f_hidden").value == "100" and at.number_input(key="f_latent").value == 30
    at.selectbox(key="f_recipe").set_value("vae").run()
    assert at.text_input(key="f_hidden").value == "150,100" and at.number_input(key="f_latent").value == 10
    assert at.radio(key="f_objective").value == "variational"
    assert at.query_params["preset"] == "vae"
    at.number_input(key="f_latent").set_value(2).run()
    assert at.query_params["latent"] == "2"
    # a field's state gone (Streamlit drops widgets' state; AppTest cannot delete a widget's): the form is
    # refilled from the address, which holds its settings
    at.session_state["form_keys"] = [*at.session_state["form_keys"], "f_dropped"]
    at.session_state["f_hidden"] = "7"   # what the refill overwrites, as the address says otherwise
    at.run()
    assert not at.exception and at.number_input(key="f_latent").value == 2
    assert at.text_input(key="f_hidden").value == "150,100" and at.radio(key="f_objective").value == "variational"

    shared = AppTest.from_file(APP, default_timeout=TIMEOUT)
    shared.session_state["dataset"] = "digits"
    shared.query_params["preset"] = "vae"
    shared.query_params["latent"] = "2"
    shared.run()
    shared.switch_page("pages/train.py").run()
    assert shared.number_input(key="f_latent").value == 2 and shared.radio(key="f_objective").value == "variational"


def test_precision_is_a_setting_and_a_pinned_device_is_fixed(env, monkeypatch):
    at = app("pages/train.py")
    assert at.selectbox(key="f_precision").options == ["fp32", "bf16", "fp16"]
    assert not at.selectbox(key="f_device").disabled
    at.selectbox(key="f_precision").set_value("bf16").run()
    assert at.query_params["precision"] == "bf16"   # in the share link like any setting
    monkeypatch.setenv("AELAB_DEVICE", "cpu")        # a hosted server pins its device
    pinned = app("pages/train.py")
    assert pinned.selectbox(key="f_device").disabled and pinned.selectbox(key="f_device").value == "cpu"


def test_invalid_settings_show_an_error_and_disable_start(env):
    at = app("pages/train.py")
    at.radio(key="f_objective").set_value("sparse").run()
    at.radio(key="f_sparsity").set_value("kl").run()
    assert any("sigmoid" in e.value for e in at.error)
    assert at.button(key="start").disabled


def test_train_from_the_page(env):
    at = app("pages/train.py")
    at.text_input(key="f_hidden").set_value("32").run()
    at.number_input(key="f_epochs").set_value(2).run()
    at.button(key="start").click().run()
    assert not at.exception
    job = registry().get(at.session_state["job_id"])
    assert job.join(120), "training did not finish"
    at.run()   # AppTest does not fire run_every: redraw once the job is done
    assert not at.exception
    snap = job.snapshot()
    assert snap.status == "finished" and len(snap.history["val_loss"]) == 2 and snap.trace
    assert any("saved" in s.value for s in at.success)
    assert at.session_state["active_run"] == f"run:{snap.run_name}"
    assert (env / snap.run_name / "model.safetensors").exists()


def test_reconstructions_widgets_change_the_output(with_runs):
    from aelab import jobs

    at = app("pages/reconstructions.py", active_run="run:ae-small")
    assert all(t.join(120) for t in jobs.registry().tasks())   # scoring the test set, in a worker
    at.run()   # AppTest does not fire run_every: redraw once the scores are in
    assert len(at.metric) == 4 and at.slider(key="rec_noise").value == 0.2
    assert len(at.get("plotly_chart")) == 1 and len(at.image) == 2   # per-class errors, the worst images
    assert any("At this noise level" in c.value for c in at.caption)
    grid = at.image[0].value
    at.slider(key="rec_n").set_value(8).run()
    assert not at.exception and at.image[0].value != grid
    grid = at.image[0].value
    at.slider(key="rec_noise").set_value(0.6).run()
    assert at.image[0].value != grid
    bce_at = lambda a: float(next(c.value for c in a.caption if "noise level" in c.value).split("BCE ")[1].split(",")[0])  # noqa: E731
    noisy = bce_at(at)
    at.slider(key="rec_noise").set_value(0.0).run()
    assert bce_at(at) < noisy   # a noisier input reconstructs worse


def test_latent_page_pca_and_tsne(with_runs):
    at = app("pages/latent.py", active_run="run:vae-2d")
    assert at.radio(key="lat_method").value == "pca"
    assert len(at.get("plotly_chart")) == 2 and len(at.dataframe) == 1
    at.radio(key="lat_method").set_value("tsne").run()
    # t-SNE runs in a background task: the page shows its progress and returns at once
    assert not at.exception and len(at.get("plotly_chart")) == 0
    assert "t-SNE of" in at.get("progress")[0].proto.text
    from aelab import jobs

    first = next(t for t in jobs.registry().tasks() if t.kwargs.get("perplexity") == 30.0 and not t.finished)
    at.slider(key="lat_perp").set_value(40.0).run()   # a new setting supersedes the t-SNE under way
    assert first.join(30) and first.status == "cancelled"
    assert all(t.join(120) for t in jobs.registry().tasks())
    at.run()   # AppTest does not fire run_every: redraw once the task is done
    # the map, the time-lapse, then what the code units do: two histograms and the VAE's KL per dimension
    assert not at.exception and len(at.get("plotly_chart")) == 5 and len(at.dataframe) == 1
    kl = json.loads(at.get("plotly_chart")[4].proto.spec)
    assert kl["layout"]["title"]["text"].startswith("KL to the prior per latent dimension:")
    assert len(kl["data"][0]["x"]) == 2 and any("of 2 latent dimensions carry" in c.value for c in at.caption)


def test_latent_page_umap_from_a_link(with_runs):
    from aelab import jobs

    at = app("pages/latent.py", {"method": "umap", "n": "150"}, active_run="run:vae-2d")
    assert at.radio(key="lat_method").value == "umap" and "UMAP of 150 codes" in at.get("progress")[0].proto.text
    at.slider(key="lat_neighbors").set_value(8).run()   # supersedes the first UMAP
    task = next(t for t in jobs.registry().tasks() if t.kwargs.get("n_neighbors") == 8)
    assert task.join(TIMEOUT) and task.status == "finished", task.error
    at.run()
    title = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert not at.exception and title.startswith("UMAP of 150 test codes (2-D)")
    assert len(json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"]) > 0


def test_latent_page_hover_map_is_a_task(with_runs):
    from aelab import jobs

    at = app("pages/latent.py", {"dims": "3"}, active_run="run:vae-2d")
    at.toggle(key="lat_hover").set_value(True).run()
    task = next(t for t in jobs.registry().tasks() if t.name == "hover_map")
    assert task.args[1] == 297 and task.args[3] == 3   # every digits test image, in 3-D
    assert task.join(TIMEOUT) and task.status == "finished", task.error
    at.run()
    assert not at.exception and len(at.get("iframe")) == 1
    assert '"z": [' in at.get("iframe")[0].proto.srcdoc   # the 3-D map
    at.toggle(key="lat_hover").set_value(False).run()
    assert not at.exception and len(at.get("iframe")) == 0 and "lat_hover_cache" not in at.session_state


def test_generate_page(with_runs):
    at = app("pages/generate.py", active_run="run:vae-2d")
    assert at.slider(key="gen_temp").value == 1.0
    # the VAE and the GAN side by side, then the VAE's interpolation, traversal and 2-D manifold
    assert at.multiselect(key="gen_compare").value == ["run:vae-2d", "run:gan-small"]
    assert len(at.image) == 5 and any("manifold" in m.value for m in at.markdown)
    samples = at.image[0].value, at.image[1].value
    at.slider(key="gen_temp").set_value(0.3).run()
    assert at.image[0].value != samples[0] and at.image[1].value != samples[1]
    assert "needs a small classifier" in at.info[0].value and at.button(key="train_classifier")
    at.multiselect(key="gen_compare").set_value(["run:gan-small"]).run()
    assert len(at.image) == 4

    at = app("pages/generate.py", active_run="run:gan-small")   # a GAN: interpolation between random codes
    assert any("two random codes" in m.value for m in at.markdown) and at.number_input(key="gen_za")
    at = app("pages/generate.py", active_run="run:ae-small")
    assert any("does not generate" in c.value for c in at.caption)


def test_generate_page_scores_samples_with_the_domain_classifier(with_runs, classifier):
    from aelab import jobs

    at = app("pages/generate.py", active_run="run:vae-2d")
    assert not at.error, [e.value for e in at.error]
    assert all(t.join(120) for t in jobs.registry().tasks())
    at.run()   # AppTest does not fire run_every: redraw once the scores are in
    fids = [m for m in at.metric if m.label == "FID (domain)"]
    assert len(fids) == 2 and all(float(m.value) > 0 for m in fids)
    assert len(at.get("plotly_chart")) == 1   # predicted class shares: test images, VAE, GAN
    assert "(run **clf**, " in at.expander[0].markdown[0].value


@pytest.mark.parametrize("page, message", [("pages/reconstructions.py", "A GAN has no encoder"),
                                           ("pages/latent.py", "A GAN has no encoder")])
def test_pages_explain_what_a_gan_cannot_do(with_runs, page, message):
    at = app(page, active_run="run:gan-small")
    assert message in at.info[0].value and not at.error


def test_train_page_trains_a_gan_and_plays_it_back(env):
    at = app("pages/train.py")
    at.selectbox(key="f_recipe").set_value("gan").run()
    assert at.radio(key="f_family").value == "gan" and at.number_input(key="f_d_steps").value == 1
    assert at.text_input(key="f_hidden").value == "150,100" and at.selectbox(key="f_d_activation").value == "selu"
    at.text_input(key="f_hidden").set_value("32,16")
    at.number_input(key="f_epochs").set_value(2)
    at.number_input(key="f_label_smoothing").set_value(0.1).run()
    assert at.query_params["label_smoothing"] == "0.1"
    at.button(key="start").click().run()
    job = registry().get(at.session_state["job_id"])
    assert job.join(120) and job.snapshot().status == "finished"
    assert job.cfg.model.family == "gan" and job.cfg.train.label_smoothing == 0.1
    at.run()
    at.run()
    assert not at.exception and not at.error
    slider = at.slider(key=f"frame-{job.id}")
    assert slider.value == 2 and len(job.snapshot().frames) == 3
    last = at.image[0].value
    slider.set_value(0).run()
    assert at.image[0].value != last   # epoch 0: the untrained generator
    assert any(m.label == "Discriminator loss" for m in at.metric)


def test_runs_page_compare_rename_delete(with_runs, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "own"
    shutil.copytree(with_runs, root)
    monkeypatch.setenv("AELAB_RUNS_DIR", str(root))
    at = app("pages/runs.py")
    assert sorted(at.dataframe[0].value["run"]) == ["ae-small", "gan-small", "vae-2d"]
    at.multiselect(key="runs_compare").set_value(["run:ae-small", "run:vae-2d"]).run()
    assert len(at.get("plotly_chart")) == 3 and len(at.dataframe) == 3   # and the settings against results

    at.selectbox(key="runs_manage").set_value("run:ae-small").run()
    assert any("python -m aelab train --preset denoising-gaussian --data digits" in c.value for c in at.code), [c.value for c in at.code]
    rename = lambda name: (at.text_input(key="runs_new_name").set_value(name),  # noqa: E731
                           next(b for b in at.button if b.label == "Rename").click(), at.run())
    rename("../evil")   # a form: the new name and the click go in one submit
    assert any("invalid run name" in e.value for e in at.error) and (root / "ae-small").exists()
    rename("renamed")
    assert (root / "renamed").is_dir() and not (root / "ae-small").exists()

    at.selectbox(key="runs_manage").set_value("run:renamed").run()
    assert at.button(key="runs_delete").disabled   # needs the confirmation first
    at.checkbox(key="runs_confirm").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception and not (root / "renamed").exists()
    assert list(at.dataframe[0].value["run"]) == ["gan-small", "vae-2d"]


def test_hosted_mode_keeps_visitors_apart(with_runs, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("AELAB_HOSTED", "1")
    root = tmp_path / "hosted"
    monkeypatch.setenv("AELAB_RUNS_DIR", str(root))
    examples = tmp_path / "examples"
    shutil.copytree(with_runs / "vae-2d", examples / "vae-2d")
    monkeypatch.setenv("AELAB_EXAMPLES_DIR", str(examples))
    shutil.copytree(with_runs / "ae-small", root / "sessions" / "visitor-a" / "ae-small")

    a = app("pages/runs.py", session_id="visitor-a")
    assert sorted(a.dataframe[0].value["run"]) == ["ae-small", "vae-2d"]
    assert sorted(a.dataframe[0].value["source"]) == ["example", "yours"]
    b = app("pages/runs.py", session_id="visitor-b")
    assert list(b.dataframe[0].value["run"]) == ["vae-2d"]   # examples only: nothing of visitor a's
    assert "hosted demo" in " ".join(c.value for c in b.sidebar.caption)


def test_refused_start_says_why(env, monkeypatch):
    from aelab import jobs

    monkeypatch.setenv("AELAB_MAX_EPOCHS", "3")
    monkeypatch.setattr(jobs, "_registry", jobs.Registry(max_jobs=2))
    at = app("pages/train.py")
    at.button(key="start").click().run()   # the stacked recipe asks for 10 epochs
    assert any("is 10 epochs; the limit is 3 epochs (AELAB_MAX_EPOCHS)" in e.value for e in at.error)
    assert "job_id" not in at.session_state


def test_home_one_click_recipe_starts_a_job(env):
    at = app()
    next(b for b in at.button if b.label == "stacked").click().run()
    assert not at.exception
    job = registry().get(at.session_state["job_id"])
    assert job.cfg.preset == "stacked" and job.cfg.data.name == "digits"
    assert job.join(120) and job.snapshot().status == "finished"


def test_upload_your_own_images_then_train_on_them(env, tmp_path, monkeypatch, digits):
    from conftest import png_bytes, zip_bytes

    monkeypatch.setenv("AELAB_DATA_DIR", str(tmp_path / "data"))
    good = zip_bytes({f"{'small' if digits.y_train[i] < 5 else 'large'}/{i}.png": png_bytes(digits.x_train[i, 0].numpy())
                      for i in range(80)})
    at = app("pages/train.py")
    at.sidebar.button(key="upload_add").click().run()
    assert "Choose a file first" in at.sidebar.error[0].value
    at.sidebar.file_uploader[0].set_value(("bad.zip", zip_bytes({"../../escape.png": b"x"}), "application/zip"))
    at.sidebar.button(key="upload_add").click().run()
    assert "Upload rejected" in at.sidebar.error[0].value and "unsafe name" in at.sidebar.error[0].value

    at.sidebar.file_uploader[0].set_value(("my digits.zip", good, "application/zip"))
    at.sidebar.number_input(key="upload_size").set_value(12)
    at.sidebar.button(key="upload_add").click().run()
    assert not at.exception and not at.sidebar.error
    assert "80 images of 12×12, 2 classes" in at.sidebar.success[0].value
    stored = at.session_state["dataset"]
    assert stored.startswith(str(tmp_path / "data" / "uploads" / "local")) and stored.endswith(".npz")
    assert at.sidebar.selectbox(key="dataset").value == stored   # chosen like a built-in data set

    at.number_input(key="f_epochs").set_value(1)
    at.text_input(key="f_hidden").set_value("16").run()
    at.button(key="start").click().run()
    job = registry().get(at.session_state["job_id"])
    assert job.join(120) and job.snapshot().status == "finished", job.snapshot().error
    run = aelab.RunStore(env).open(job.snapshot().run_name)
    assert run.config.data.name == stored and run.image_shape == (1, 12, 12) and run.class_names == ["large", "small"]

    other = AppTest.from_file(APP, default_timeout=TIMEOUT)   # hosted: another visitor does not see it
    monkeypatch.setenv("AELAB_HOSTED", "1")
    other.run()
    assert stored not in other.sidebar.selectbox(key="dataset").options


def test_latent_page_decodes_any_point_and_plays_the_codes_back(with_runs):
    import json

    at = app("pages/latent.py", active_run="run:vae-2d")
    assert [s.value for s in at.subheader][:2] == ["Decode any point of the plane", "How the codes moved during training"]
    decoded = at.image[0].value
    x = at.slider(key="dec_x")
    x.set_value(x.min).run()   # the inverse PCA transform of another point decodes to another image
    assert "inverse PCA transform" in at.image[0].proto.imgs[0].caption and at.image[0].value != decoded
    at.radio(key="dec_plane").set_value("prior").run()   # a VAE: straight from the prior
    prior = at.image[0].value
    at.slider(key="dec_zi").set_value(2.5).run()
    assert at.image[0].value != prior and "z[0] = 2.5" in at.image[0].proto.imgs[0].caption

    lapse = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert len(lapse["frames"]) == 4   # before training and after each of the 3 epochs
    assert lapse["layout"]["updatemenus"][0]["buttons"][0]["label"] == "&#9654;"   # play (and pause)
    assert len(lapse["layout"]["sliders"][0]["steps"]) == 4
    first, last = lapse["frames"][0]["data"][0]["x"], lapse["frames"][-1]["data"][0]["x"]
    assert first != last   # the codes moved

    from aelab import jobs

    at.radio(key="lapse_method").set_value("tsne").run()
    assert all(t.join(120) for t in jobs.registry().tasks())
    at.run()
    assert not at.exception and len(json.loads(at.get("plotly_chart")[1].proto.spec)["frames"]) == 4

    at.radio(key="dec_plane").set_value("projection")
    at.radio(key="lat_method").set_value("tsne").run()   # t-SNE has no inverse: decode the nearest codes' mean
    assert all(t.join(120) for t in jobs.registry().tasks())
    at.run()
    assert "nearest to" in at.image[0].proto.imgs[0].caption


def test_time_lapse_codes_are_stored_with_the_run(trained_runs):
    timeline = aelab.RunStore(trained_runs).open("ae-small").timeline()
    assert timeline["codes"].shape == (3, 150, 8) and timeline["code_labels"].shape == (150,)
    assert "codes" not in aelab.RunStore(trained_runs).open("gan-small").timeline()   # no encoder


def test_train_page_trains_the_domain_classifier(env):
    at = app("pages/train.py")
    at.selectbox(key="f_recipe").set_value("classifier").run()
    assert at.radio(key="f_family").value == "classifier" and at.number_input(key="f_features").value == 128
    assert at.radio(key="f_arch").value == "conv" and at.text_input(key="f_channels").value == "32,64"
    at.number_input(key="f_epochs").set_value(3).run()
    at.button(key="start").click().run()
    job = registry().get(at.session_state["job_id"])
    assert job.join(120) and job.snapshot().status == "finished", job.snapshot().error
    at.run()
    at.run()
    assert not at.exception and not at.error
    accuracy = next(m for m in at.metric if m.label == "Validation accuracy")
    assert float(accuracy.value.rstrip("%")) > 50
    run = aelab.RunStore(env).open(job.snapshot().run_name)
    assert run.family == "classifier" and run.metrics["test"]["accuracy"] > 0.5
    at.switch_page("pages/reconstructions.py").run()
    assert "does not generate or reconstruct" in at.info[0].value


def test_train_page_warms_beta_up_and_shows_the_active_units(env):
    at = app("pages/train.py")
    at.selectbox(key="f_recipe").set_value("vae").run()
    assert at.selectbox(key="f_beta_schedule").value == "constant"
    assert not [n for n in at.number_input if n.key == "f_beta_epochs"]
    at.selectbox(key="f_beta_schedule").set_value("warmup").run()
    assert at.number_input(key="f_beta_epochs").value == 2.0
    assert at.query_params["beta_schedule"] == "warmup" and at.query_params["beta_epochs"] == "2.0"
    at.text_input(key="f_hidden").set_value("32")
    at.number_input(key="f_epochs").set_value(2).run()
    at.button(key="start").click().run()
    job = registry().get(at.session_state["job_id"])
    assert job.join(120) and job.snapshot().status == "finished"
    assert job.cfg.train.beta_schedule == "warmup"
    at.run()
    at.run()
    assert not at.exception and not at.error
    snap = job.snapshot()
    assert [round(x, 1) for x in snap.history["beta"]] == [0.5, 1.0] and snap.traces["beta"][0][1] < 0.5
    units = next(m for m in at.metric if m.label == "Active units")
    assert units.value == f"{snap.history['active_units'][-1]:g} of 10"
    assert any("β rises from 0 to 1 over 2 epochs" in c.value for c in at.caption)
    # a link with a schedule for a model that has no β: the form drops it rather than refusing
    at.radio(key="f_objective").set_value("plain").run()
    assert not at.exception and not at.error and "beta_schedule" not in at.query_params


def test_runs_page_continues_a_run(with_runs, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "own"
    shutil.copytree(with_runs, root)
    for f in ("train_state.json", "train_state.safetensors"):
        (root / "ae-small" / f).unlink(missing_ok=True)   # as a run saved before AE Lab kept its state
    monkeypatch.setenv("AELAB_RUNS_DIR", str(root))
    at = app("pages/runs.py")
    at.selectbox(key="runs_manage").set_value("run:ae-small").run()
    assert at.button(key="runs_continue").disabled   # it needs the fresh optimiser confirmed
    at.checkbox(key="runs_fresh_optimizer").check().run()
    assert not at.button(key="runs_continue").disabled

    at.selectbox(key="runs_manage").set_value("run:vae-2d").run()
    assert not [c for c in at.checkbox if c.key == "runs_fresh_optimizer"]   # its state was saved
    at.number_input(key="runs_more_epochs").set_value(2).run()
    at.button(key="runs_continue").click().run()
    assert not at.exception and not at.error
    job = registry().get(at.session_state["job_id"])
    assert job.join(120) and job.snapshot().status == "finished", job.snapshot().error
    run = aelab.RunStore(root).open(job.snapshot().run_name)
    assert run.resumed_from == {"run": "vae-2d", "epochs": 3.0, "fresh_optimizer": False, "stopped_mid_epoch": False}
    assert run.history["epoch"] == [1.0, 2.0, 3.0, 4.0, 5.0] and len(run.timeline()["frames"]) == 6
    at.switch_page("pages/runs.py").run()
    table = at.dataframe[0].value
    assert table.loc[table["run"] == run.name, "continues"].item() == "vae-2d"


def test_train_page_sweeps_two_runs_and_the_runs_page_compares_them(env):
    at = app("pages/train.py")
    at.text_input(key="f_hidden").set_value("16")
    at.number_input(key="f_epochs").set_value(1).run()
    at.selectbox(key="sweep_setting_0").set_value("lr").run()
    at.text_input(key="sweep_values_0").set_value("0.5, -1").run()
    assert any("the learning rate must be > 0" in e.value for e in at.error)   # refused before anything starts
    at.text_input(key="sweep_values_0").set_value("0.5, 1.5").run()
    at.button(key="sweep_start").click().run()
    assert not at.exception and not at.error
    jobs = [registry().get(i) for i in at.session_state["sweep_jobs"]]
    assert len(jobs) == 2 and all(j.join(120) for j in jobs)
    at.run()   # AppTest does not fire run_every: redraw once the jobs are done
    table = at.dataframe[0].value
    assert list(table["status"]) == ["finished", "finished"] and table["run"].str.contains("-lr0.5").any()

    at.switch_page("pages/runs.py").run()
    assert not at.exception
    assert at.selectbox(key="hp_family").value == "autoencoder"
    chart = next(c for c in at.get("plotly_chart") if "runs: settings against final metrics" in c.proto.spec)
    assert '"lr"' in chart.proto.spec
    assert len(at.dataframe[-1].value) == 2
    at.multiselect(key="hp_axes").set_value(["val loss"]).run()   # the axes the visitor picks, no others
    chart = next(c for c in at.get("plotly_chart") if "runs: settings against final metrics" in c.proto.spec)
    assert '"lr"' not in chart.proto.spec and '"val loss"' in chart.proto.spec
    at.multiselect(key="hp_filter_lr").set_value(["0.5"]).run()
    shown = at.dataframe[-1].value
    assert list(shown["lr"]) == [0.5]
