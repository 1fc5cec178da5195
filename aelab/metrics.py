"""Reconstruction metrics (BCE, MSE, PSNR, SSIM) and representation probes (kNN, logistic regression)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import default_data_dir, pixels, to_float
from .files import keep_newest, write_json_atomic
from .latent import encode_images
from .noise import corrupt
from .runtime import INFERENCE_BATCH


@torch.no_grad()
def reconstruct(model, x_uint8: torch.Tensor, batch_size: int = INFERENCE_BATCH,
                corruption: tuple[str, float] | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, reconstructions), floats (N, C, H, W) on the CPU, in eval mode.

    ``corruption=(kind, level)`` feeds corrupted inputs (to see a denoiser at work); the
    returned inputs are then the corrupted ones.
    """
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator(device).manual_seed(seed)
    ins, outs = [], []
    for i in range(0, len(x_uint8), batch_size):
        xb = to_float(x_uint8[i:i + batch_size].to(device))
        if corruption is not None:
            xb = corrupt(xb, corruption[0], corruption[1], g)
        outs.append(model.to_image(model.decode(model.encode(xb))).cpu())
        ins.append(xb.cpu())
    return torch.cat(ins), torch.cat(outs)


@dataclass
class Sample:
    """Test images and what a model makes of them, as (n, H, W) arrays in [0, 1] for display."""
    index: np.ndarray                  # (n,) positions in the image set
    originals: np.ndarray
    inputs: np.ndarray | None          # the corrupted inputs (clipped for display), when corrupted
    recon: np.ndarray
    bce: float | None = None           # mean BCE and PSNR of the reconstructions of corrupted inputs,
    psnr: float | None = None          # against the clean originals

    def rows(self) -> np.ndarray:
        """Originals, corrupted inputs (if any) and reconstructions, one row each."""
        return np.concatenate([self.originals, *([self.inputs] if self.inputs is not None else []), self.recon])


def reconstruct_sample(model, x_uint8: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0,
                       classes: list[int] | None = None, corruption: tuple[str, float] | None = None) -> Sample:
    """``n`` random images (seeded; of ``classes`` only, when given) and their reconstructions, from
    corrupted inputs when ``corruption=(kind, level)`` (then scored against the clean originals)."""
    pool = np.flatnonzero(np.isin(y.numpy(), classes)) if classes else np.arange(len(x_uint8))
    idx = np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False)
    inputs, recon = reconstruct(model, x_uint8[idx], corruption=corruption, seed=seed)
    originals = pixels(x_uint8[idx])
    if corruption is None:
        return Sample(idx, originals, None, recon[:, 0].numpy())
    scores = per_image_metrics(torch.from_numpy(originals[:, None]), recon)
    return Sample(idx, originals, inputs[:, 0].clamp(0, 1).numpy(), recon[:, 0].numpy(),
                  float(scores["bce"].mean()), float(scores["psnr"].mean()))


def pairs(model, x_uint8: torch.Tensor, ncols: int = 10) -> tuple[np.ndarray, int]:
    """(images (rows * ncols, H, W), ncols): rows of up to ``ncols`` originals, each above a row of their
    reconstructions; a short last row is padded with white. Any number of images (>= 1)."""
    inputs, recon = reconstruct(model, x_uint8)
    n, ncols = len(inputs), max(1, min(ncols, len(inputs)))
    rows = -(-n // ncols)
    blank = np.ones((rows * ncols - n, *inputs.shape[2:]), np.float32)
    grid_in = np.concatenate([inputs[:, 0].numpy(), blank]).reshape(rows, 1, ncols, *inputs.shape[2:])
    grid_out = np.concatenate([recon[:, 0].numpy(), blank]).reshape(rows, 1, ncols, *inputs.shape[2:])
    return np.concatenate([grid_in, grid_out], axis=1).reshape(-1, *inputs.shape[2:]), ncols


def _gaussian_window(size: int, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) SSIM of images in [0, 1] (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, valid area).

    Small images use the largest odd window that fits.
    """
    size = min(11, x.shape[-1] - (1 - x.shape[-1] % 2), x.shape[-2] - (1 - x.shape[-2] % 2))
    w = _gaussian_window(size).to(x).repeat(x.shape[1], 1, 1, 1)
    conv = lambda t: F.conv2d(t, w, groups=x.shape[1])  # noqa: E731
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = conv(x), conv(y)
    vx, vy, cxy = conv(x * x) - mx ** 2, conv(y * y) - my ** 2, conv(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def per_image_metrics(x: torch.Tensor, recon: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image BCE (mean per pixel), MSE, PSNR (dB, peak 1) and SSIM of reconstructions in [0, 1]."""
    eps = 1e-7
    r = recon.clamp(eps, 1 - eps)
    bce = -(x * r.log() + (1 - x) * (1 - r).log()).flatten(1).mean(1)
    mse = (recon - x).square().flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return {"bce": bce.numpy(), "mse": mse.numpy(), "psnr": psnr.numpy(), "ssim": ssim(x, recon).numpy()}


@dataclass
class ReconstructionReport:
    means: dict[str, float]                  # over the whole set
    per_image: dict[str, np.ndarray]         # (N,) each
    per_class: dict[str, dict[str, float]]   # class name -> metric -> mean
    worst: np.ndarray                        # indices of the worst images by BCE, worst first

    def to_json(self) -> dict:
        return {"test": self.means, "per_class": self.per_class}


def reconstruction_report(model, x_uint8: torch.Tensor, y: torch.Tensor, class_names, n_worst: int = 16,
                          batch_size: int = 100) -> ReconstructionReport:
    """Metrics of ``model`` on a labelled image set: means, per-class means and the worst images.

    Computed batch by batch, so memory stays at a few batches whatever the size of the set. Each batch's metrics
    are copied into arrays made once: a batch's own small tensors, kept to the end, would pin the heap between the
    batches' large blocks (the heap grew 78 MB over Fashion-MNIST's test set; with the copies, 16; in batches of
    100 rather than 250, 9.5, for 0.06 s more)."""
    per: dict[str, np.ndarray] = {}
    for i in range(0, len(x_uint8), batch_size):
        for k, v in per_image_metrics(*reconstruct(model, x_uint8[i:i + batch_size], batch_size)).items():
            per.setdefault(k, np.empty(len(x_uint8), v.dtype))[i:i + len(v)] = v
    labels = y.numpy()
    per_class = {}
    for c, name in enumerate(class_names):
        mask = labels == c
        if mask.any():
            per_class[name] = {k: float(v[mask].mean()) for k, v in per.items()}
    worst = np.argsort(-per["bce"])[:n_worst]
    return ReconstructionReport({k: float(v.mean()) for k, v in per.items()}, per, per_class, worst)


def probe_accuracy(train_feats: np.ndarray, train_y: np.ndarray, test_feats: np.ndarray, test_y: np.ndarray,
                   k: int = 5, seed: int = 0) -> dict[str, float]:
    """Accuracy of a kNN (k=5) and of a logistic regression (standardised features) on test features."""
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with sklearn.config_context(working_memory=64):   # MB per distance chunk (default 1 GB): servers are small
        knn = KNeighborsClassifier(n_neighbors=k).fit(train_feats, train_y)
        logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=seed))
        logreg.fit(train_feats, train_y)
        return {"knn": float(knn.score(test_feats, test_y)), "logreg": float(logreg.score(test_feats, test_y))}


BASELINES_KEPT = 64   # pixel baselines kept on disk, the most recently written (about 50 bytes each)
_PIXEL_BASELINES: dict[str, dict[str, float]] = {}   # this process's, by the key of _baseline_key


def pixel_baseline(dataset, n_train: int = 5000, n_test: int = 5000) -> dict[str, float]:
    """The probes on raw pixels: what the codes have to beat. Fitting them takes 5-10 s here (a logistic regression
    on 784 features), and the same images give the same numbers, so they are kept: in this process, and on disk
    under ``<data dir>/baselines/`` for the next process (every training job from the app runs in a fresh
    worker), named by a hash of the images, the labels and scikit-learn's version."""
    import sklearn

    xtr, ytr = dataset.x_train[:n_train], dataset.y_train[:n_train].numpy()
    xte, yte = dataset.x_test[:n_test], dataset.y_test[:n_test].numpy()
    key = _baseline_key(xtr.numpy(), ytr, xte.numpy(), yte, sklearn.__version__)
    if key not in _PIXEL_BASELINES:
        path = default_data_dir() / "baselines" / f"{key}.json"
        found = _read_baseline(path)
        if found is None:
            scale = np.float32(1 / 255)   # float32 pixels: half the memory of float64 on a small server
            found = probe_accuracy(xtr.flatten(1).numpy() * scale, ytr, xte.flatten(1).numpy() * scale, yte)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(path, found)
                keep_newest(path.parent, BASELINES_KEPT, "*.json")
            except OSError:   # a read-only or full disk: computed again next time
                pass
        _PIXEL_BASELINES[key] = found
    return _PIXEL_BASELINES[key]


def _baseline_key(*parts) -> str:
    """A name for these arrays (their shapes, types and bytes) and values."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(repr((part.shape, part.dtype.str)).encode())
            digest.update(np.ascontiguousarray(part).data)
        else:
            digest.update(repr(part).encode())
        digest.update(b"|")
    return digest.hexdigest()[:32]


def _read_baseline(path: Path) -> dict[str, float] | None:
    """A kept baseline, or None when there is none or it is not two accuracies (then it is computed again)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    ok = isinstance(found, dict) and set(found) == {"knn", "logreg"} and all(
        isinstance(v, float) and 0.0 <= v <= 1.0 for v in found.values())
    return found if ok else None


def probe_report(model, dataset, n_train: int = 5000, n_test: int = 5000, baseline: bool = True) -> dict:
    """kNN and logistic-regression accuracy on codes (fitted on the first ``n_train`` training images,
    scored on the first ``n_test`` test images), beside the same probes on raw pixels."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    xtr, ytr = dataset.x_train[:n_train], dataset.y_train[:n_train].numpy()
    xte, yte = dataset.x_test[:n_test], dataset.y_test[:n_test].numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out = {"codes": probe_accuracy(encode_images(model, xtr), ytr, encode_images(model, xte), yte),
               "n_train": len(xtr), "n_test": len(xte)}
        if baseline:
            out["pixels"] = pixel_baseline(dataset, n_train, n_test)
    return out
