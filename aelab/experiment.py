"""Train a configured model end to end and save it as a run: the one path used by the app, the CLI and scripts.

:func:`train` is the entry point from Python and validates its config; :func:`train_validated` is what the
CLI and the app's jobs call with a config they validated at their own edge.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Literal

from . import diagnostics, quality
from .checkpoint import Checkpoint
from .config import RunConfig
from .data import Dataset, load_dataset
from .distributed import Context
from .errors import ConfigError, RunError, TrainingDiverged
from .latent import CodeRecorder
from .metrics import probe_report, reconstruction_report
from .models import Model, build_model, check_size
from .runs import Run, RunStore, find_classifier, stored_runs
from .runtime import release_freed_memory
from .train import Callback, FitResult, PreviewRecorder, Trainer

DOWNLOAD = True  # allow torchvision downloads when a data set is not found locally
CODE_IMAGES = 2000   # test images of a run's code diagnostics (as the Latent space page's)


@dataclass
class Resume:
    """A saved run to continue: its training state, or None to continue with a fresh optimiser (what a run
    saved without one allows once the user agrees: see :func:`plan_resume`)."""
    run: Run
    checkpoint: Checkpoint | None

    @property
    def epochs_before(self) -> int:
        """Passes over the training set the run made (one stopped mid-epoch counts)."""
        return self.checkpoint.epochs if self.checkpoint else math.ceil(self.run.epochs_done)


def plan_resume(run: Run, more_epochs: int, fresh_optimizer: bool = False) -> tuple[RunConfig, Resume]:
    """The config (its ``train.epochs`` the total: those done plus ``more_epochs``) and the :class:`Resume` that
    train ``run`` for ``more_epochs`` more epochs with :func:`train_validated`. A run saved without its
    training state (older runs, the examples, a diverged run) continues only with ``fresh_optimizer``; a
    greedy run does not continue (its phases are over)."""
    if not isinstance(more_epochs, int) or isinstance(more_epochs, bool) or more_epochs < 1:
        raise ConfigError("the epochs to add must be a whole number >= 1, got {more_epochs!r}", more_epochs=more_epochs)
    if run.config.train.greedy:
        raise ConfigError("run {name!r} was trained greedily, layer by layer, and its phases are over: it cannot "
                          "continue; train a new run", name=run.name)
    checkpoint = None if fresh_optimizer else run.checkpoint()
    if checkpoint is None and not fresh_optimizer:
        raise RunError("run {name!r} was saved without its optimiser state (an example, a run saved before AE Lab "
                       "kept it, or a diverged run): it can continue only with a fresh optimiser, which changes its "
                       "course (CLI: --fresh-optimizer)", name=run.name)
    resume = Resume(run, checkpoint)
    cfg = replace(run.config, train=replace(run.config.train, epochs=resume.epochs_before + more_epochs))
    return cfg.validate(), resume


@dataclass
class Experiment:
    run: Run
    fit: FitResult
    previews: PreviewRecorder   # the live preview before training and after every epoch
    model: Model                # the trained model, in eval mode, on the device it trained on


def evaluate_run(model, dataset: Dataset, probes: bool = True, classifier: Run | None = None) -> dict:
    """Test-set metrics for metrics.json: reconstruction metrics, code diagnostics
    (:func:`aelab.diagnostics.summary`) and probe accuracies where the model reconstructs and encodes, the
    quality measure of generative models when a domain ``classifier`` run is given, and a classifier's test
    accuracy."""
    metrics: dict = {}
    if model.can_reconstruct:
        metrics.update(reconstruction_report(model, dataset.x_test, dataset.y_test, dataset.class_names).to_json())
        release_freed_memory()   # each stage's blocks differ in size: without this the heap grows stage by stage
    if model.can_encode and model.can_reconstruct:
        metrics["codes"] = diagnostics.summary(model, dataset.x_test[:CODE_IMAGES])
    if probes and model.can_encode and model.can_reconstruct and len(dataset.class_names) > 1:
        metrics["probes"] = probe_report(model, dataset)
        release_freed_memory()
    if model.cfg.family == "classifier":
        metrics["test"] = {"accuracy": quality.accuracy(model, dataset.x_test, dataset.y_test)}
    if model.can_sample and classifier is not None:
        metrics["quality"] = quality.quality_report(
            model, classifier.load_model(), dataset, classifier_name=classifier.name,
            classifier_accuracy=classifier.metrics.get("test", {}).get("accuracy")).to_json()
        release_freed_memory()
    return metrics


def check_fits(cfg: RunConfig, dataset: Dataset):
    """The training/validation split of ``dataset``, after checking that the validated ``cfg`` can train on
    it: a batch no larger than the training set, a model within ``AELAB_MAX_MODEL_MB`` (estimated without
    allocating it)."""
    split = dataset.split(cfg.data.validation_split)
    if cfg.train.batch_size > len(split.x_train):
        raise ConfigError("train.batch_size {batch_size} is larger than the training set ({n_x_train} images of "
                          "{name})", batch_size=cfg.train.batch_size, n_x_train=len(split.x_train), name=dataset.name)
    check_size(cfg.model, dataset.image_shape, cfg.train.batch_size, len(dataset.class_names))
    return split


def train(cfg: RunConfig, *, runs_dir=None, name: str | None = None, callbacks: list[Callback] | None = None,
          stop_event: threading.Event | None = None, evaluate: bool = True, dataset: Dataset | None = None,
          classifier: Run | None | Literal["auto"] = "auto", previews: PreviewRecorder | None = None,
          deadline: float | None = None) -> Experiment:
    """Validate ``cfg``, load its data, train, evaluate on the test set and save the run.

    A stop request (``stop_event``) ends training within one batch; the run is still saved with the epochs
    done and ``meta.status == 'stopped'``. A VAE or GAN is scored with the domain ``classifier`` run given,
    or with the newest one found for its data set (your runs, then the examples) when ``"auto"``.
    """
    return train_validated(cfg.validate(), runs_dir=runs_dir, name=name, callbacks=callbacks, stop_event=stop_event,
                           evaluate=evaluate, dataset=dataset, classifier=classifier, previews=previews,
                           deadline=deadline)


def train_validated(cfg: RunConfig, *, runs_dir=None, name: str | None = None, callbacks: list[Callback] | None = None,
                    stop_event: threading.Event | None = None, evaluate: bool = True, dataset: Dataset | None = None,
                    classifier: Run | None | Literal["auto"] = "auto",
                    previews: PreviewRecorder | None = None, deadline: float | None = None,
                    dist: Context | None = None, resume: Resume | None = None) -> Experiment | None:
    """:func:`train` for a config its caller has validated (nothing further in validates it again).
    ``previews``: the recorder of the live preview, when the caller reads it while training (the app);
    ``deadline``: a ``time.monotonic()`` past which training stops and the run is saved as ``timeout``;
    ``dist``: this process's place in a torchrun launch. Every rank trains; rank 0 alone evaluates and writes
    the run, the other ranks return None once training ends. ``resume`` (with the config of
    :func:`plan_resume`): continue that run, saved as a new run that names it in ``meta.resumed_from``; its
    history, time-lapse and live preview continue those of the run."""
    dataset = dataset or load_dataset(cfg.data, DOWNLOAD)
    split = check_fits(cfg, dataset)
    history, timeline, checkpoint = None, {}, None
    if resume is not None:
        if dist is not None:
            raise ConfigError("a run continues in one process: run --resume without torchrun")
        model = resume.run.load_model()
        history, timeline = resume.run.history, resume.run.timeline()
        checkpoint = resume.checkpoint or Checkpoint(
            epochs=resume.epochs_before, epoch=resume.run.epochs_done,
            step=round(resume.run.epochs_done * math.ceil(len(split.x_train) / cfg.train.batch_size)))
    else:
        model = build_model(cfg.model, dataset.image_shape, cfg.train.seed, n_classes=len(dataset.class_names))
    previews = previews or PreviewRecorder()
    if "frames" in timeline and not previews.frames:
        previews.frames = list(timeline["frames"])
    codes = CodeRecorder(codes=timeline.get("codes"))
    diverged = None
    try:
        fit = Trainer(cfg.train, [previews, codes, diagnostics.ActiveUnitsRecorder(), *(callbacks or [])],
                      stop_event, deadline=deadline, dist=dist).fit(model, split, checkpoint, history)
    except TrainingDiverged as e:   # keep the epochs before, with the weights of the last finite one
        if e.result is None:
            raise
        diverged, fit = e, e.result
    if dist and not dist.is_main:
        return None
    if classifier == "auto":
        classifier = find_classifier(dataset.name, stored_runs(runs_dir)) if evaluate and model.can_sample else None
    metrics = evaluate_run(model, dataset, classifier=classifier) if evaluate and not diverged else {}
    meta = {"status": fit.status, "image_shape": list(dataset.image_shape), "class_names": list(dataset.class_names),
            "data_source": dataset.source, "device": fit.device, "seconds_per_epoch": fit.seconds_per_epoch,
            "stopped_at": fit.stopped_at, "n_params": sum(p.numel() for p in model.parameters()),
            **({"distributed": fit.distributed} if fit.distributed else {}),
            **({"resumed_from": {"run": resume.run.name, "epochs": resume.run.epochs_done,
                                 "fresh_optimizer": resume.checkpoint is None,
                                 "stopped_mid_epoch": checkpoint.stopped_mid_epoch}} if resume else {}),
            **({"error": str(diverged)} if diverged else {})}
    store = RunStore(runs_dir)
    if resume is not None and name is None:
        name = store.unique_continuation(resume.run.name)
    run = store.save(model, cfg, fit.history, meta, metrics, name, {**previews.timeline(), **codes.timeline()},
                     None if diverged else fit.checkpoint)
    if diverged:
        raise TrainingDiverged("{reason} The epochs before were saved as run {run} (status diverged, with the "
                               "weights of the last finite epoch).", fit, run.name,
                               reason=diverged.said, run=run.name)
    return Experiment(run, fit, previews, model)
