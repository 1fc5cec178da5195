import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import aelab
from aelab import generate, latent, metrics
from aelab.config import AutoencoderConfig


@pytest.fixture(scope="module")
def trained():
    ds = aelab.load_dataset("digits")
    cfg = aelab.preset("vae", data="digits")
    cfg.model = AutoencoderConfig(hidden=(64,), latent=2, variational=True, code_activation="linear")
    cfg.train.epochs, cfg.train.batch_size, cfg.train.lr = 15, 32, 3e-3
    model = aelab.build_model(cfg.model, ds.image_shape)
    aelab.Trainer(cfg.train).fit(model, ds.split(0.1))
    return model, ds


def test_ssim_and_psnr_known_values():
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(3))
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    noisier = (x + 0.4 * torch.randn_like(x)).clamp(0, 1)
    assert (metrics.ssim(x, noisier) < metrics.ssim(x, noisy)).all() and (metrics.ssim(x, noisier) < 0.7).all()
    assert (metrics.ssim(x, 1 - x) < 0).all()   # inverted contrast: negative structure term
    per = metrics.per_image_metrics(x, noisy)
    mse = ((x - noisy) ** 2).flatten(1).mean(1).numpy()
    assert np.allclose(per["psnr"], 10 * np.log10(1 / mse), rtol=1e-5)
    assert metrics.ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)).shape == (2,)


def test_reconstruction_report(trained):
    model, ds = trained
    report = metrics.reconstruction_report(model, ds.x_test, ds.y_test, ds.class_names, n_worst=5)
    assert set(report.means) == {"bce", "mse", "psnr", "ssim"} and len(report.per_class) == 10
    assert len(report.worst) == 5
    assert report.per_image["bce"][report.worst[0]] == report.per_image["bce"].max()


def test_probes_beat_chance_and_report_the_baseline(trained):
    model, ds = trained
    p = metrics.probe_report(model, ds, n_train=1000, n_test=297)
    assert p["codes"]["knn"] > 0.3 and p["pixels"]["knn"] > 0.9   # 2-D codes vs 64 raw pixels


def test_the_pixel_baseline_is_kept_on_disk_for_the_next_process(monkeypatch, tmp_path):
    """Every job's worker is a fresh process: the baseline on raw pixels (5-10 s of fitting on Fashion-MNIST) is
    read back from <data dir>/baselines/, fitted again when the file is damaged, and other images have their own."""
    monkeypatch.setenv("AELAB_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(metrics, "_PIXEL_BASELINES", {})
    ds = aelab.load_dataset("digits")
    first = metrics.pixel_baseline(ds, n_train=500, n_test=200)
    [kept] = (tmp_path / "baselines").glob("*.json")
    assert first["knn"] > 0.9 and 0.8 < first["logreg"] <= 1.0

    fit = metrics.probe_accuracy
    fits = []
    monkeypatch.setattr(metrics, "probe_accuracy", lambda *a, **k: fits.append(1) or fit(*a, **k))
    monkeypatch.setattr(metrics, "_PIXEL_BASELINES", {})   # a new process: only the disk remembers
    assert metrics.pixel_baseline(ds, n_train=500, n_test=200) == first and fits == []

    kept.write_text('{"knn": 7.0, "logreg": 0.5}')   # damaged (or written by hand): fitted again, rewritten
    monkeypatch.setattr(metrics, "_PIXEL_BASELINES", {})
    assert metrics.pixel_baseline(ds, n_train=500, n_test=200) == first and fits == [1]
    assert json.loads(kept.read_text()) == first

    other = dataclasses.replace(ds, x_train=ds.x_train.clone())
    other.x_train[0] = 255 - other.x_train[0]   # one image differs: another key, fitted
    metrics.pixel_baseline(other, n_train=500, n_test=200)
    assert fits == [1, 1] and len(list((tmp_path / "baselines").glob("*.json"))) == 2


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
@pytest.mark.parametrize("dims", [2, 3])
def test_projections(trained, method, dims):
    model, ds = trained
    codes = latent.encode_images(model, ds.x_test)
    proj = latent.project(codes, method, dims, perplexity=20, max_iter=250)
    assert proj.coords.shape == (len(codes), dims) and np.isfinite(proj.coords).all()
    if method == "pca":
        assert proj.explained_variance.sum() == pytest.approx(1.0, abs=1e-5)   # 2-D codes, 2 components
    with pytest.raises(ValueError, match="choose pca, tsne, umap"):
        latent.project(codes, "isomap")


def test_umap_keeps_neighbours_and_is_reproducible():
    from sklearn.datasets import load_digits
    from sklearn.manifold import trustworthiness

    pixels, _ = load_digits(return_X_y=True)   # 1,797 images of 64 pixels
    first = latent.project(pixels, "umap", 2, n_neighbors=15, min_dist=0.1, seed=3).coords
    assert first.shape == (1797, 2) and np.isfinite(first).all()
    assert trustworthiness(pixels, first, n_neighbors=10) > 0.97   # 0.988 measured; PCA's 2-D map: 0.83
    assert np.array_equal(first, latent.project(pixels, "umap", 2, seed=3).coords)   # the seed fixes the map
    other = latent.project(pixels, "umap", 2, seed=4).coords
    assert not np.array_equal(first, other)
    collapsed = latent.project(np.zeros((50, 4)), "umap", 2, n_neighbors=5).coords   # a collapsed code still maps
    assert collapsed.shape == (50, 2) and np.isfinite(collapsed).all()
    for bad, message in (({"n_neighbors": 1}, "n_neighbors must be in"), ({"n_neighbors": 1797}, "n_neighbors"),
                         ({"min_dist": 1.5}, "min_dist must be in")):
        with pytest.raises(ValueError, match=message):
            latent.project(pixels, "umap", 2, **bad)


def test_generation(trained):
    model, ds = trained
    s1, s2 = generate.sample_prior(model, 6, seed=1), generate.sample_prior(model, 6, seed=1)
    assert s1.shape == (6, 8, 8) and np.array_equal(s1, s2) and 0 <= s1.min() and s1.max() <= 1
    assert not np.array_equal(s1, generate.sample_prior(model, 6, seed=2))
    path = generate.interpolate(model, ds.x_test[0], ds.x_test[1], steps=7)
    assert path.shape == (7, 8, 8)
    ends = latent.decode_codes(model, latent.encode_images(model, ds.x_test[:2]))
    assert np.allclose(path[0], ends[0], atol=1e-5) and np.allclose(path[-1], ends[1], atol=1e-5)
    assert generate.traverse(model, ds.x_test[0], dim=1, steps=5).shape == (5, 8, 8)
    assert generate.manifold_grid(model, n=4).shape == (4, 4, 8, 8)


def test_compile_umap_leaves_umaps_functions_in_numbas_cache():
    """What `make` runs after installing: the map's numba functions land in the on-disk cache of the venv."""
    import umap

    latent.compile_umap()
    cached = {p.name.split("-")[0] for p in (Path(umap.__file__).parent / "__pycache__").glob("*.nbi")}
    assert {"umap_.smooth_knn_dist", "umap_.compute_membership_strengths",
            "layouts._optimize_layout_euclidean_single_epoch"} <= cached, cached
