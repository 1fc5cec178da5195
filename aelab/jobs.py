"""Background training for the app: one thread per job, a stop event, and a snapshot to poll.

The worker thread never touches Streamlit: it only updates the job's snapshot under a lock, and
pages read copies of it. One process-wide registry limits how many jobs run at once.
"""
from __future__ import annotations

import copy
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from . import limits
from .config import RunConfig
from .runs import Run
from .train import Callback, PreviewRecorder, TrainState

TRACE_EVERY = 20   # batches between two points of the live training-loss trace


class JobRefused(RuntimeError):
    """A job could not start (too many running, epoch cap); the message says why."""


@dataclass
class Snapshot:
    status: str = "starting"          # starting | running | finished | stopped | timeout | failed
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    loss: float = float("nan")        # running mean training loss of the current epoch
    history: dict[str, list[float]] = field(default_factory=dict)
    # "loss" and each named term -> [(fractional epoch, mean over the last TRACE_EVERY batches)]
    traces: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    frames: list[np.ndarray] = field(default_factory=list)   # the preview before training and after each epoch
    preview_input: np.ndarray | None = None
    error: str | None = None
    run_name: str | None = None
    first_point_seconds: float | None = None   # from start to the first point of the trace

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "timeout", "failed")

    @property
    def trace(self) -> list[tuple[float, float]]:
        """The live training-loss trace."""
        return self.traces.get("loss", [])

    @property
    def preview(self) -> np.ndarray | None:
        return self.frames[-1] if self.frames else None


class Job:
    """One training run of a validated config in a background thread; ``classifier`` scores a VAE or GAN."""

    def __init__(self, cfg: RunConfig, runs_dir, owner: str = "", name: str | None = None,
                 classifier: Run | None = None):
        self.id = uuid.uuid4().hex[:12]
        self.cfg, self.runs_dir, self.owner, self.name, self.classifier = cfg, runs_dir, owner, name, classifier
        self.started = time.time()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()   # set when the work is over, whatever its outcome
        self._snap = Snapshot(epochs=cfg.train.epochs)
        self._thread = threading.Thread(target=self._work, name=f"aelab-job-{self.id}", daemon=True)

    # ------------------------------------------------------------------------ public
    def start(self) -> "Job":
        self._thread.start()
        return self

    def snapshot(self) -> Snapshot:
        with self._lock:
            return copy.deepcopy(self._snap)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def finished(self) -> bool:
        """Its work is over; a job registered but not started yet is not finished (it counts against the limit)."""
        return self._finished.is_set()

    # ------------------------------------------------------------------------ worker
    def _work(self) -> None:
        import torch

        from .experiment import train_validated  # late import: keeps `import aelab.jobs` light

        # Leave a core to the web server (and a local browser): with every core busy, torch's
        # worker threads wait on each other and an epoch takes 2-3x longer (bench: app speed).
        torch.set_num_threads(job_threads())
        previews = PreviewRecorder()
        minutes = limits.limit("job_minutes")
        try:
            exp = train_validated(self.cfg, runs_dir=self.runs_dir, name=self.name, stop_event=self._stop,
                                  callbacks=[_Recorder(self, previews)], previews=previews,
                                  classifier=self.classifier,
                                  deadline=time.monotonic() + minutes * 60 if math.isfinite(minutes) else None)
            with self._lock:
                self._snap.status = exp.fit.status
                self._snap.run_name = exp.run.name
        except Exception as e:   # shown to the user as a message, never a traceback
            with self._lock:
                self._snap.status = "failed"
                self._snap.error = f"{type(e).__name__}: {e}" if not str(e).startswith(type(e).__name__) else str(e)
                self._snap.run_name = getattr(e, "run_name", None)   # a diverged run is saved all the same
        finally:
            self._finished.set()


def job_threads() -> int:
    """Torch threads per training job: $AELAB_JOB_THREADS, else all cores but one."""
    return int(os.environ.get("AELAB_JOB_THREADS") or max(1, (os.cpu_count() or 2) - 1))


class _Recorder(Callback):
    """Copies what the page shows into the job's snapshot: progress, the loss traces, the previews."""

    def __init__(self, job: Job, previews: PreviewRecorder):
        self.job, self.previews = job, previews
        self.chunks: dict[str, list[float]] = {}   # "loss" and each term -> values since the last trace point

    def on_train_begin(self, state: TrainState) -> None:
        with self.job._lock:
            s = self.job._snap
            s.status, s.batches, s.epochs = "running", state.batches, state.epochs
            s.frames, s.preview_input = list(self.previews.frames), self.previews.inputs

    def on_batch_end(self, state: TrainState) -> None:
        job = self.job
        for k, v in {"loss": state.batch_loss, **state.batch_terms}.items():
            self.chunks.setdefault(k, []).append(float(v))
        with job._lock:
            s = job._snap
            s.epoch, s.batch, s.loss = state.epoch, state.batch, state.loss
            if len(self.chunks["loss"]) >= TRACE_EVERY or state.batch == state.batches:
                x = state.epoch - 1 + state.batch / state.batches
                for k, values in self.chunks.items():
                    s.traces.setdefault(k, []).append((x, float(np.mean(values))))
                self.chunks.clear()
                if s.first_point_seconds is None:
                    s.first_point_seconds = time.time() - job.started

    def on_epoch_end(self, state: TrainState) -> None:
        with self.job._lock:
            self.job._snap.history = copy.deepcopy(state.history)
            self.job._snap.frames = list(self.previews.frames)


class Registry:
    """The process-wide set of jobs, with a limit on how many train at once."""

    def __init__(self, max_jobs: int | None = None, max_epochs: int | None = None):
        self.max_jobs = max_jobs if max_jobs is not None else int(os.environ.get("AELAB_MAX_JOBS", "2"))
        cap = os.environ.get("AELAB_MAX_EPOCHS")
        self.max_epochs = max_epochs if max_epochs is not None else (int(cap) if cap else None)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, cfg: RunConfig, runs_dir, owner: str = "", name: str | None = None,
              classifier: Run | None = None) -> Job:
        """Start training the validated ``cfg`` in the background, or raise :class:`JobRefused` saying why."""
        if self.max_epochs is not None and cfg.train.epochs > self.max_epochs:
            raise JobRefused(f"this server caps training at {self.max_epochs} epochs per run; "
                             f"lower epochs from {cfg.train.epochs}, or run AE Lab locally for longer training")
        with self._lock:   # registered and unfinished: a job counts from the moment it is registered
            running = [j for j in self._jobs.values() if not j.finished]
            if len(running) >= self.max_jobs:
                raise JobRefused(f"{len(running)} training job(s) are running on this server, the limit is "
                                 f"{self.max_jobs} (AELAB_MAX_JOBS); wait for one to finish or stop yours")
            job = Job(cfg, runs_dir, owner, name, classifier)
            self._jobs[job.id] = job
        return job.start()

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None


_registry: Registry | None = None
_registry_lock = threading.Lock()


def registry() -> Registry:
    """The process-wide registry (created on first use from the environment)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry()
        return _registry


class Task:
    """A function computed once in a background thread (e.g. a t-SNE projection), polled by pages."""

    def __init__(self, fn, *args, **kwargs):
        self.started = time.time()
        self.finished: float | None = None
        self.result = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._work, args=(fn, args, kwargs), daemon=True,
                                        name="aelab-task")
        self._thread.start()

    def _work(self, fn, args, kwargs) -> None:
        try:
            self.result = fn(*args, **kwargs)
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
        self.finished = time.time()

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done


_tasks: dict[tuple, Task] = {}
_tasks_lock = threading.Lock()
MAX_TASKS = 32


def task(key: tuple, fn, *args, **kwargs) -> Task:
    """The task computing ``fn(*args, **kwargs)`` for ``key``, started on first request and then shared
    by every session asking for the same key. Failed tasks are retried on the next request."""
    with _tasks_lock:
        t = _tasks.get(key)
        if t is None or (t.done and t.error):
            if len(_tasks) >= MAX_TASKS:   # forget the oldest finished results
                for k in [k for k, v in _tasks.items() if v.done][: len(_tasks) - MAX_TASKS + 1]:
                    del _tasks[k]
            t = _tasks[key] = Task(fn, *args, **kwargs)
        return t
