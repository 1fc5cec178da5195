"""Train a configured model end to end and save it as a run: the one path used by app, CLI and scripts."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from .config import ConfigError, RunConfig
from .data import Dataset, load_dataset
from .metrics import probe_report, reconstruction_report
from .models import build_model
from .runs import Run, RunStore
from .train import Callback, FitResult, Trainer

DOWNLOAD = True  # allow torchvision downloads when a data set is not found locally


@dataclass
class Experiment:
    run: Run
    fit: FitResult


def evaluate_run(model, dataset: Dataset, probes: bool = True) -> dict:
    """Test-set reconstruction metrics (and probe accuracies) for metrics.json."""
    report = reconstruction_report(model, dataset.x_test, dataset.y_test, dataset.class_names)
    metrics = report.to_json()
    if probes:
        metrics["probes"] = probe_report(model, dataset)
    return metrics


def train(cfg: RunConfig, *, runs_dir=None, name: str | None = None, callbacks: list[Callback] | None = None,
          stop_event: threading.Event | None = None, evaluate: bool = True, dataset: Dataset | None = None,
          preview_images: int = 8) -> Experiment:
    """Validate ``cfg``, load its data, train, evaluate on the test set and save the run.

    A stop request (``stop_event``) ends training within one batch; the run is still saved with
    the epochs done and ``meta.status == 'stopped'``.
    """
    cfg.validate()
    dataset = dataset or load_dataset(cfg.data.name, cfg.data.data_dir, DOWNLOAD)
    split = dataset.split(cfg.data.validation_split)
    if cfg.train.batch_size > len(split.x_train):
        raise ConfigError(f"train.batch_size {cfg.train.batch_size} is larger than the training set "
                          f"({len(split.x_train)} images of {dataset.name})")
    model = build_model(cfg.model, dataset.image_shape, cfg.train.seed)
    trainer = Trainer(cfg.train, callbacks or [], stop_event, preview_images=preview_images)
    fit = trainer.fit(model, split)
    metrics = evaluate_run(model, dataset) if evaluate else {}
    meta = {"status": fit.status, "image_shape": list(dataset.image_shape), "class_names": list(dataset.class_names),
            "data_source": dataset.source, "device": fit.device, "seconds_per_epoch": fit.seconds_per_epoch,
            "stopped_at": fit.stopped_at, "n_params": sum(p.numel() for p in model.parameters())}
    run = RunStore(runs_dir).save(model, cfg, fit.history, meta, metrics, name)
    return Experiment(run, fit)
