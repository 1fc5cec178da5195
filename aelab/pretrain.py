"""Unsupervised pretraining, measured: does an encoder trained on unlabelled images help a classifier that
has only a few labels?

For each label budget (10, 50, ... labelled training images, balanced over the classes, drawn per seed) and
each seed, four classifiers are trained on the same labelled images and scored on the whole test set:

- ``scratch``: the encoder's architecture, freshly initialised, plus the head, all trained;
- ``frozen``: the pretrained encoder, frozen (its codes are computed once), plus the head;
- ``finetuned``: the pretrained encoder plus the head, all trained from the first step, the encoder at
  ``encoder_lr`` (a tenth of the head's rate by default) so that it is adjusted, not overwritten;
- ``pixels``: scikit-learn's logistic regression on the raw pixels, the baseline without a network.

The three networks share the head (the same initial weights for a given seed), the optimiser (Adam,
cross-entropy), the number of updates (``epochs`` passes over the budget, at least ``min_steps``) and the
labelled subsets; nothing is held out, so there is no early stopping. A VAE's encoder gives its posterior mean.
"""
from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .config import StudyConfig
from .data import Dataset, load_dataset, to_float
from .errors import ConfigError
from .i18n import N_
from .latent import encode_images
from .models import build_model
from .models.layers import keras_init_
from .runs import STUDY_VARIANTS, Run, RunStore, Study
from .runtime import INFERENCE_BATCH

VARIANTS = STUDY_VARIANTS   # scratch, frozen, finetuned, pixels: what results.json may hold
NETWORK_VARIANTS = VARIANTS[:3]
LABELS = {"scratch": N_("from scratch"), "frozen": N_("frozen encoder"), "finetuned": N_("fine-tuned"),
          "pixels": N_("pixels (logistic regression)")}   # marked: the Pretraining page shows them translated
LOSS_POINTS = 20   # points of each fit's training-loss curve


# ------------------------------------------------------------------------------------------ pieces
def balanced_subset(y: np.ndarray, n: int, n_classes: int, seed: int) -> np.ndarray:
    """Indices of ``n`` images of ``y`` balanced over the classes (n // K each; the remainder goes to
    randomly chosen classes), drawn without replacement from a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    per_class = np.full(n_classes, n // n_classes)
    per_class[rng.choice(n_classes, n % n_classes, replace=False)] += 1
    picked = []
    for k in range(n_classes):
        pool = np.flatnonzero(y == k)
        if len(pool) < per_class[k]:
            raise ConfigError("a budget of {n} labels needs {needed} training images of class {k}, the data set has "
                              "{n_pool}", n=n, needed=per_class[k], k=k, n_pool=len(pool))
        picked.append(rng.choice(pool, per_class[k], replace=False))
    return np.sort(np.concatenate(picked))


def updates(n: int, cfg: StudyConfig) -> tuple[int, int]:
    """(batch size, number of updates) for a budget of ``n`` labelled images."""
    batch = min(cfg.batch_size, n)
    return batch, max(cfg.min_steps, cfg.epochs * math.ceil(n / batch))


def make_head(in_features: int, n_classes: int, cfg: StudyConfig, seed: int) -> nn.Module:
    """The classifier head, initialised from ``seed`` (Glorot uniform, zero bias): a linear layer, or one
    hidden layer of ``cfg.hidden`` ReLU units."""
    head = nn.Linear(in_features, n_classes) if cfg.head == "linear" else \
        nn.Sequential(nn.Linear(in_features, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, n_classes))
    keras_init_(head, torch.Generator().manual_seed(seed))
    return head


class EncoderClassifier(nn.Module):
    """An autoencoder's encoder (its decoder dropped) followed by a head: images (B, C, H, W) in [0, 1] ->
    class logits (B, K)."""

    def __init__(self, autoencoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = copy.deepcopy(autoencoder)
        self.encoder.decoder = nn.Identity()   # not used by encode(); its weights would only be carried along
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.encode(x))


def build_network(variant: str, encoder_run_model: nn.Module, n_classes: int, cfg: StudyConfig,
                  seed: int) -> EncoderClassifier:
    """The network of ``variant`` (scratch, frozen or finetuned) for the pretrained ``encoder_run_model``:
    scratch rebuilds its architecture with fresh weights (seeded), the others copy the pretrained weights.
    The head is the same for all three (same seed)."""
    if variant not in NETWORK_VARIANTS:
        raise ValueError(f"unknown network variant {variant!r}")
    base = encoder_run_model
    if variant == "scratch":
        base = build_model(encoder_run_model.cfg, encoder_run_model.image_shape, seed=10_000 + seed)
    head = make_head(encoder_run_model.latent_dim, n_classes, cfg, seed)
    net = EncoderClassifier(base, head)
    if variant == "frozen":
        net.encoder.requires_grad_(False)
    return net


def fit(net: EncoderClassifier, variant: str, x: torch.Tensor, y: torch.Tensor, cfg: StudyConfig,
        seed: int, stop: threading.Event | None = None) -> list[float]:
    """Train ``net`` on the uint8 images ``x`` (N, C, H, W) and labels ``y`` (N,) as ``variant`` says; returns
    the training-loss curve (``LOSS_POINTS`` means over equal stretches of the updates). A frozen encoder
    stays in eval mode and computes its codes once; only the head learns."""
    batch, steps = updates(len(x), cfg)
    if variant == "frozen":   # the encoder is fixed: its codes once, then only the head learns
        inputs, learner = torch.from_numpy(encode_images(net.encoder, x)), net.head
        optimizer = torch.optim.Adam(net.head.parameters(), lr=cfg.lr)
    else:
        inputs, learner = to_float(x), net
        groups = [{"params": net.head.parameters(), "lr": cfg.lr},
                  {"params": net.encoder.parameters(), "lr": cfg.lr if variant == "scratch" else cfg.encoder_lr}]
        optimizer = torch.optim.Adam(groups)
    learner.train()
    g = torch.Generator().manual_seed(seed)
    losses, order = [], torch.empty(0, dtype=torch.long)
    for step in range(steps):
        if stop is not None and stop.is_set():
            break
        start = (step * batch) % len(x)
        if start == 0 or start + batch > len(order):
            order, start = torch.randperm(len(x), generator=g), 0
        idx = order[start:start + batch]
        loss = nn.functional.cross_entropy(learner(inputs[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    net.eval()
    if not losses:   # stopped before its first update
        return []
    return [float(np.mean(chunk)) for chunk in np.array_split(np.asarray(losses), min(LOSS_POINTS, len(losses)))]


@torch.no_grad()
def accuracy(model: nn.Module, inputs: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``inputs`` whose class ``model`` predicts as ``y``: uint8 images for a network, or a frozen
    encoder's codes (N, latent) for its head."""
    model.eval()
    prepare = to_float if inputs.dtype == torch.uint8 else (lambda t: t)
    hits = sum(int((model(prepare(inputs[i:i + INFERENCE_BATCH])).argmax(1) == y[i:i + INFERENCE_BATCH]).sum())
               for i in range(0, len(inputs), INFERENCE_BATCH))
    return hits / len(inputs)


def pixel_accuracy(x: torch.Tensor, y: torch.Tensor, test_pixels: np.ndarray, y_test: torch.Tensor) -> float:
    """Logistic regression (scikit-learn, lbfgs, C=1, up to 1,000 iterations) fitted on the raw pixels of ``x``
    and scored on ``test_pixels`` (N, C*H*W, in [0, 1]: see :func:`flat_pixels`)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y.numpy())) < 2:   # one class: logistic regression cannot fit, the constant is the model
        return float((y_test == y[0]).float().mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=1000).fit(flat_pixels(x), y.numpy())
    return float(clf.score(test_pixels, y_test.numpy()))


def flat_pixels(x_uint8: torch.Tensor) -> np.ndarray:
    """uint8 images (N, C, H, W) -> (N, C*H*W) float32 in [0, 1], the pixel baseline's features."""
    return to_float(x_uint8).flatten(1).numpy()


# ------------------------------------------------------------------------------------------ the study
@dataclass
class Progress:
    """What a study reports after each fit: how many are done of how many, and the fit's record."""
    done: int
    total: int
    fit: dict


def pretrainable(run: Run) -> bool:
    """Whether a study can use ``run`` as its encoder: an autoencoder trained on labelled data."""
    return run.family == "autoencoder" and len(run.class_names) > 1


def check_encoders(encoders: list[Run]) -> None:
    """Encoders of one study: autoencoder runs (they encode), on one data set, with labels."""
    if not encoders:
        raise ConfigError("a study needs at least one encoder run")
    if len({run.name for run in encoders}) != len(encoders):
        raise ConfigError("each encoder run once")
    for run in encoders:
        if run.family != "autoencoder":
            raise ConfigError("run {name!r} is a {family}, not an autoencoder: it has no encoder to pretrain with",
                              name=run.name, family=run.family)
    datasets = {run.config.data.name for run in encoders}
    if len(datasets) > 1:
        raise ConfigError("the encoders were trained on different data sets ({names}); a study compares encoders of "
                          "one data set", names=", ".join(sorted(datasets)))
    if not pretrainable(encoders[0]):
        raise ConfigError("{data} has no labels: there is nothing to classify", data=encoders[0].config.data.name)


def fits_total(encoders: list[Run], cfg: StudyConfig) -> int:
    """How many classifiers a study trains: three networks per encoder and the pixel baseline, per budget
    and seed."""
    return len(cfg.labels) * cfg.seeds * (len(NETWORK_VARIANTS) * len(encoders) + 1)


def run_study(encoders: list[Run], cfg: StudyConfig, *, runs_dir=None, name: str | None = None,
              dataset: Dataset | None = None, progress: Callable[[Progress], None] | None = None,
              stop: threading.Event | None = None) -> Study:
    """Run the validated study ``cfg`` on the pretrained ``encoders`` and save it in the run store.

    A stop request ends it after the current fit; a stopped study is not saved (its table would miss
    budgets) and :class:`StudyStopped` is raised."""
    check_encoders(encoders)
    dataset = dataset or load_dataset(encoders[0].config.data)
    n_classes = len(dataset.class_names)
    largest = max(cfg.labels)
    if largest > len(dataset.x_train):
        raise ConfigError("a budget of {largest:,} labels is more than the {n_x_train:,} training images of {name}",
                          largest=largest, n_x_train=len(dataset.x_train), name=dataset.name)
    models = {run.name: run.load_model() for run in encoders}
    total, fits, started = fits_total(encoders, cfg), [], time.perf_counter()

    def record(fit_record: dict) -> None:
        fits.append(fit_record)
        if progress is not None:
            progress(Progress(len(fits), total, fit_record))
        if stop is not None and stop.is_set():
            raise StudyStopped(f"stopped after {len(fits)} of {total} fits; nothing was saved")

    y_train = dataset.y_train.numpy()
    test_pixels = flat_pixels(dataset.x_test)   # computed once: every pixel baseline is scored on them
    test_codes = {name: torch.from_numpy(encode_images(model, dataset.x_test))   # a frozen encoder's, once
                  for name, model in models.items()}
    for n in cfg.labels:
        for seed in cfg.seed_list:
            idx = torch.from_numpy(balanced_subset(y_train, n, n_classes, seed * 1_000_003 + n))
            x, y = dataset.x_train[idx], dataset.y_train[idx]
            t = time.perf_counter()
            acc = pixel_accuracy(x, y, test_pixels, dataset.y_test)
            record({"encoder": None, "variant": "pixels", "labels": n, "seed": seed, "accuracy": acc, "steps": 0,
                    "seconds": round(time.perf_counter() - t, 3), "loss": []})
            for run_name, model in models.items():
                for variant in NETWORK_VARIANTS:
                    t = time.perf_counter()
                    net = build_network(variant, model, n_classes, cfg, seed)
                    curve = fit(net, variant, x, y, cfg, seed, stop)
                    acc = accuracy(net.head, test_codes[run_name], dataset.y_test) if variant == "frozen" else \
                        accuracy(net, dataset.x_test, dataset.y_test)
                    record({"encoder": run_name, "variant": variant, "labels": n, "seed": seed, "accuracy": acc,
                            "steps": updates(n, cfg)[1], "seconds": round(time.perf_counter() - t, 3),
                            "loss": curve})
    meta = {"status": "finished", "data": dataset.name, "class_names": list(dataset.class_names),
            "encoders": [run.name for run in encoders], "seconds": round(time.perf_counter() - started, 2),
            "n_test": len(dataset.x_test), "threads": torch.get_num_threads()}
    return RunStore(runs_dir).save_study(cfg, meta, fits, name)


class StudyStopped(RuntimeError):
    """A study was stopped before its last fit."""


def summarize(fits: list[dict]) -> list[dict]:
    """One row per (encoder, budget, variant): ``mean`` and ``std`` (sample standard deviation, 0 for one
    seed) of the test accuracy, and ``seeds``, the per-seed accuracies in seed order. The pixel baseline
    has encoder None."""
    groups: dict[tuple, list[tuple[int, float]]] = {}
    for f in fits:
        groups.setdefault((f["encoder"], f["labels"], f["variant"]), []).append((f["seed"], f["accuracy"]))
    rows = []
    for (encoder, labels, variant), values in groups.items():
        accs = [a for _, a in sorted(values)]
        rows.append({"encoder": encoder, "labels": labels, "variant": variant, "mean": float(np.mean(accs)),
                     "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0, "seeds": accs})
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(rows, key=lambda r: (r["encoder"] or "", r["labels"], order[r["variant"]]))


def beats_scratch(rows: list[dict]) -> dict[str, dict[str, list[int]]]:
    """Per encoder: its ``budgets``, and for ``finetuned`` and ``frozen`` the budgets at which that variant's
    mean accuracy beat training from scratch. ``rows``: :func:`summarize`."""
    mean = {(r["encoder"], r["labels"], r["variant"]): r["mean"] for r in rows}
    out = {}
    for encoder in dict.fromkeys(r["encoder"] for r in rows if r["encoder"]):
        budgets = sorted({n for (e, n, _) in mean if e == encoder})
        out[encoder] = {"budgets": budgets, **{v: [n for n in budgets if mean[(encoder, n, v)] >
                                                   mean[(encoder, n, "scratch")]] for v in ("finetuned", "frozen")}}
    return out
