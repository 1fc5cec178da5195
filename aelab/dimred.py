"""Dimensionality reduction: PCA against linear and nonlinear autoencoders (HOML ch. 17, "Performing PCA with
an undercomplete linear autoencoder").

- :func:`book_3d_demo`: the book's demo, faithful: its noisy curved 3-D point cloud, projected to 2-D by a
  linear autoencoder (3 -> 2 -> 3, MSE, SGD 1.5, 20 epochs, batch 32) and by PCA.
- :func:`compare`: AE Lab's own comparison on images: test-set reconstruction MSE against the code size k
  for PCA (scikit-learn), the ``linear`` preset and the ``stacked`` architecture with that code size (each
  trained and saved as a run), and the largest principal angle between the linear AE's decoder subspace
  and PCA's.

An affine decoder's image is ``decode(0) + span(decode(e_i) - decode(0))``: :func:`decoder_subspace` reads
that span off the model, so any linear autoencoder (hidden layers included) can be compared with PCA.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from .config import COMPARE_KS, MAX_COMPARE_EPOCHS, MAX_COMPARE_K, AutoencoderConfig, DataConfig, RunConfig, TrainConfig
from .data import Dataset, Split, load_dataset, to_float
from .errors import ConfigError
from .experiment import train_validated
from .models import build_model
from .presets import preset
from .runs import Comparison, RunStore
from .runtime import INFERENCE_BATCH
from .train import Trainer


# ------------------------------------------------------------------------------------------ geometry
def max_principal_angle(a: np.ndarray, b: np.ndarray) -> float:
    """The largest principal angle, in degrees, between the column spaces of ``a`` (D, k) and ``b`` (D, k)."""
    import scipy.linalg  # here, not on import: the server (which imports this module) never computes one

    return float(np.degrees(scipy.linalg.subspace_angles(a, b).max()))


@torch.no_grad()
def decoder_subspace(model) -> np.ndarray:
    """(D, latent): directions spanning an affine decoder's image, ``decode(e_i) - decode(0)`` per code unit."""
    model.eval()
    device = next(model.parameters()).device
    k = model.latent_dim
    codes = torch.cat([torch.zeros(1, k), torch.eye(k)]).to(device)
    out = model.output(model.decode(codes)).flatten(1).cpu().double().numpy()   # (k + 1, D)
    return (out[1:] - out[0]).T


def pca_components(x: np.ndarray, k: int):
    """PCA (scikit-learn's) of the rows of ``x`` with ``k`` components (full SVD: exact, and seedless)."""
    from sklearn.decomposition import PCA  # here, not on import: scikit-learn is 80 MB the server does not need

    return PCA(n_components=k, svd_solver="full").fit(x)


def pca_mse(pca, x: np.ndarray, k: int) -> float:
    """Mean squared error per value of reconstructing ``x`` from its first ``k`` principal components."""
    z = (x - pca.mean_) @ pca.components_[:k].T
    return float(np.mean((z @ pca.components_[:k] + pca.mean_ - x) ** 2))


# ------------------------------------------------------------------------------------ the book's demo
def book_3d_data(m: int = 60, seed: int = 4, w1: float = 0.1, w2: float = 0.3, noise: float = 0.1) -> np.ndarray:
    """The notebook's ``generate_3d_data(m)`` after ``np.random.seed(seed)``, centred as it does: (m, 3)."""
    rs = np.random.RandomState(seed)   # the legacy generator np.random.seed drives: the same numbers
    angles = rs.rand(m) * 3 * np.pi / 2 - 0.5
    data = np.empty((m, 3))
    data[:, 0] = np.cos(angles) + np.sin(angles) / 2 + noise * rs.randn(m) / 2
    data[:, 1] = np.sin(angles) * 0.7 + noise * rs.randn(m) / 2
    data[:, 2] = data[:, 0] * w1 + data[:, 1] * w2 + noise * rs.randn(m)
    return data - data.mean(axis=0)


LINEAR_3D = AutoencoderConfig(arch="dense", hidden=(), latent=2, activation="linear", code_activation="linear",
                              output="linear", loss="mse")


@dataclass
class Demo3D:
    """The book's 3-D demo: the points, their 2-D codes from the linear AE and from PCA, and how they compare."""
    points: np.ndarray         # (m, 3), centred
    ae_codes: np.ndarray       # (m, 2)
    pca_codes: np.ndarray      # (m, 2)
    loss: list[float]          # the AE's training MSE per epoch (the running mean, as Keras prints it)
    ae_mse: float              # MSE of the AE's reconstructions of the points after training
    pca_mse: float             # MSE of PCA's (the best any 2-D linear projection can do)
    max_angle_deg: float       # largest principal angle between the AE decoder's plane and PCA's


def book_3d_demo(seed: int = 42, epochs: int = 20, lr: float = 1.5, m: int = 60) -> Demo3D:
    """Train the book's linear autoencoder on its 3-D points with AE Lab's trainer, and run PCA beside it."""
    points = book_3d_data(m)
    x = torch.from_numpy(points).float().reshape(m, 1, 1, 3)
    labels = torch.zeros(m, dtype=torch.long)
    split = Split(x, labels, x, labels)   # the book holds nothing out: "validation" is the training set
    model = build_model(LINEAR_3D, (1, 1, 3), seed)
    cfg = TrainConfig(optimizer="sgd", lr=lr, batch_size=32, epochs=epochs, seed=seed, device="cpu")
    fit = Trainer(cfg).fit(model, split)
    with torch.no_grad():
        out = model(x)
    pca = pca_components(points, 2)
    return Demo3D(points, out.z.numpy(), pca.transform(points), fit.history["loss"], float(out.terms["recon"]),
                  pca_mse(pca, points, 2), max_principal_angle(decoder_subspace(model), pca.components_.T))


# ------------------------------------------------------------------------------------ on images
@dataclass
class CompareProgress:
    done: int                  # models trained so far
    total: int
    row: dict                  # the row just completed: k, model, run, test_mse, seconds (and max_angle_deg)


class ComparisonStopped(RuntimeError):
    """A comparison was stopped before its last model."""


def compare_configs(data: str, k: int, epochs: int | None = None, seed: int = 42) -> dict[str, RunConfig]:
    """The two autoencoders trained at code size ``k``: the ``linear`` preset and the ``stacked`` one."""
    out = {}
    for kind, name in (("linear", "linear"), ("nonlinear", "stacked")):
        cfg = preset(name, data)
        cfg.model = replace(cfg.model, latent=k)
        cfg.train = replace(cfg.train, seed=seed, **({"epochs": epochs} if epochs else {}))
        out[kind] = cfg.validate()
    return out


def check_ks(ks: tuple[int, ...], n_pixels: int) -> tuple[int, ...]:
    """The code sizes, each once, sorted, between 1 and min(MAX_COMPARE_K, pixels)."""
    top = min(MAX_COMPARE_K, n_pixels)
    if not ks or len(ks) > 8 or any(not 1 <= k <= top for k in ks):
        raise ConfigError("code sizes: 1 to 8 of them, each between 1 and {top}, got {ks}", top=top, ks=list(ks))
    return tuple(sorted(set(ks)))


def check_epochs(epochs: int | None) -> int | None:
    """Each autoencoder's epochs: None (its preset's) or 1 to MAX_COMPARE_EPOCHS."""
    if epochs is not None and not 1 <= epochs <= MAX_COMPARE_EPOCHS:
        raise ConfigError("epochs must be between 1 and {max_compare_epochs}, got {epochs}",
                          max_compare_epochs=MAX_COMPARE_EPOCHS, epochs=epochs)
    return epochs


@torch.no_grad()
def test_mse(model, x_uint8: torch.Tensor) -> float:
    """Mean squared error per pixel of ``model``'s reconstructions of ``x_uint8``, its output not clipped
    (as PCA's is not)."""
    model.eval()
    device, total = next(model.parameters()).device, 0.0
    for i in range(0, len(x_uint8), INFERENCE_BATCH):
        x = to_float(x_uint8[i:i + INFERENCE_BATCH].to(device))
        total += torch.sum((model.output(model.decode(model.encode(x))) - x) ** 2).item()
    return total / x_uint8[0].numel() / len(x_uint8)


def compare(data: str = "fashion-mnist", ks: tuple[int, ...] = COMPARE_KS, epochs: int | None = None, *,
            seed: int = 42, runs_dir=None, name: str | None = None, dataset: Dataset | None = None,
            progress: Callable[[CompareProgress], None] | None = None,
            stop: threading.Event | None = None) -> Comparison:
    """PCA vs the linear AE vs the nonlinear AE at each code size in ``ks``, on ``data``'s test set.

    Each autoencoder is trained (``epochs``, default its preset's) and saved as a run named
    ``<name>-linear-k<k>`` / ``<name>-nonlinear-k<k>``; the table is saved as the comparison ``name``.
    A stop request ends it after the current model, and nothing of the table is saved."""
    dataset = dataset or load_dataset(DataConfig(name=data))
    ks, epochs = check_ks(tuple(ks), dataset.x_train[0].numel()), check_epochs(epochs)
    store = RunStore(runs_dir)
    name = name or store.unique_comparison_name(dataset.name)
    started = time.perf_counter()
    split = dataset.split(DataConfig().validation_split)
    train_flat = to_float(split.x_train).flatten(1).numpy()
    test_flat = to_float(dataset.x_test).flatten(1).numpy()
    pca = pca_components(train_flat, max(ks))
    rows = [{"k": k, "model": "pca", "run": None, "test_mse": pca_mse(pca, test_flat, k),
             "explained_variance": float(pca.explained_variance_ratio_[:k].sum())} for k in ks]
    total = 2 * len(ks)
    for k in ks:
        for kind, cfg in compare_configs(dataset.name, k, epochs, seed).items():
            if stop is not None and stop.is_set():
                raise ComparisonStopped(f"stopped after {len(rows) - len(ks)} of {total} models; the runs "
                                        "trained so far are saved, the table is not")
            t = time.perf_counter()
            exp = train_validated(cfg, runs_dir=runs_dir, name=f"{name}-{kind}-k{k}", dataset=dataset,
                                  stop_event=stop, classifier=None)
            if exp.fit.status != "finished":
                raise ComparisonStopped(f"{exp.fit.status} while training {exp.run.name} (saved as it is); "
                                        "the table is not saved")
            model = exp.model
            row = {"k": k, "model": kind, "run": exp.run.name, "test_mse": test_mse(model, dataset.x_test),
                   "epochs": exp.fit.history["epoch"][-1] if exp.fit.history["epoch"] else 0,
                   "seconds": round(time.perf_counter() - t, 2)}
            if kind == "linear":
                row["max_angle_deg"] = max_principal_angle(decoder_subspace(model), pca.components_[:k].T)
            rows.append(row)
            if progress is not None:
                progress(CompareProgress(len(rows) - len(ks), total, row))
    meta = {"data": dataset.name, "ks": list(ks), "epochs": epochs, "seed": seed, "n_test": len(dataset.x_test),
            "seconds": round(time.perf_counter() - started, 2), "threads": torch.get_num_threads()}
    return store.save_comparison(name, meta, rows)


def table(comparison: Comparison) -> list[dict]:
    """One row per code size: k, then the test MSE of pca, linear and nonlinear, and the linear AE's angle."""
    out: dict[int, dict] = {}
    for row in comparison.rows:
        r = out.setdefault(row["k"], {"k": row["k"]})
        r[row["model"]] = row["test_mse"]
        if "max_angle_deg" in row:
            r["max_angle_deg"] = row["max_angle_deg"]
    return [out[k] for k in sorted(out)]
