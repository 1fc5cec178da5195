"""Train a configured model end to end and save it as a run: the one path used by app, CLI and scripts."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from .config import ConfigError, RunConfig
from .data import Dataset, load_dataset
from .metrics import probe_report, reconstruction_report
from . import quality
from .models import Classifier, build_model
from .runs import Run, RunStore
from .train import Callback, FitResult, Trainer

DOWNLOAD = True  # allow torchvision downloads when a data set is not found locally


@dataclass
class Experiment:
    run: Run
    fit: FitResult


def evaluate_run(model, dataset: Dataset, probes: bool = True, classifier: Run | None = None) -> dict:
    """Test-set metrics for metrics.json: reconstruction metrics and probe accuracies where the model
    reconstructs and encodes, the quality measure of generative models when a domain ``classifier`` run
    is given, and a classifier's test accuracy."""
    metrics: dict = {}
    if model.can_reconstruct:
        metrics.update(reconstruction_report(model, dataset.x_test, dataset.y_test, dataset.class_names).to_json())
    if probes and model.can_encode and model.can_reconstruct and len(dataset.class_names) > 1:
        metrics["probes"] = probe_report(model, dataset)
    if isinstance(model, Classifier):
        metrics["test"] = {"accuracy": quality.accuracy(model, dataset.x_test, dataset.y_test)}
    if model.can_sample and classifier is not None:
        metrics["quality"] = quality.quality_report(model, classifier.load_model(), dataset,
                                                    classifier_run=classifier).to_json()
    return metrics


def train(cfg: RunConfig, *, runs_dir=None, name: str | None = None, callbacks: list[Callback] | None = None,
          stop_event: threading.Event | None = None, evaluate: bool = True, dataset: Dataset | None = None,
          preview_images: int = 8) -> Experiment:
    """Validate ``cfg``, load its data, train, evaluate on the test set and save the run.

    A stop request (``stop_event``) ends training within one batch; the run is still saved with
    the epochs done and ``meta.status == 'stopped'``.
    """
    cfg.validate()
    dataset = dataset or load_dataset(cfg.data.name, cfg.data.data_dir, DOWNLOAD, cfg.data.image_size)
    split = dataset.split(cfg.data.validation_split)
    if cfg.train.batch_size > len(split.x_train):
        raise ConfigError(f"train.batch_size {cfg.train.batch_size} is larger than the training set "
                          f"({len(split.x_train)} images of {dataset.name})")
    model = build_model(cfg.model, dataset.image_shape, cfg.train.seed, n_classes=len(dataset.class_names))
    trainer = Trainer(cfg.train, callbacks or [], stop_event, preview_images=preview_images)
    fit = trainer.fit(model, split)
    classifier = quality.find_classifier(dataset.name, quality.stored_runs(runs_dir)) \
        if evaluate and model.can_sample else None
    metrics = evaluate_run(model, dataset, classifier=classifier) if evaluate else {}
    meta = {"status": fit.status, "image_shape": list(dataset.image_shape), "class_names": list(dataset.class_names),
            "data_source": dataset.source, "device": fit.device, "seconds_per_epoch": fit.seconds_per_epoch,
            "stopped_at": fit.stopped_at, "n_params": sum(p.numel() for p in model.parameters())}
    run = RunStore(runs_dir).save(model, cfg, fit.history, meta, metrics, name, fit.timeline())
    return Experiment(run, fit)
