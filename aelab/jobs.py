"""The app's job system: training jobs run in worker processes, one queue, limits that hold.

A job runs in a warm worker process (:mod:`aelab.worker`: torch already imported, a lower priority than
the server, its data segment capped), so a crash, an out-of-memory kill or a runaway job ends that
worker only, and the visitor is told what happened. Progress crosses the process boundary as small
messages on a socket pair; pages read copies of each job's :class:`Snapshot`. One :class:`Registry`
per server holds the queue: past ``AELAB_MAX_JOBS`` running jobs, Start queues the job and shows its
place; a visitor can cancel a queued or running job; hosted mode caps each visitor's jobs.

Background tasks (projections, scores: :func:`task`) still run as threads of the server.
"""
from __future__ import annotations

import collections
import copy
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import numpy as np

from . import limits
from .config import RunConfig
from .runs import Run

NICE = 10             # workers yield the CPU to the server, which draws the pages


class JobRefused(RuntimeError):
    """A job could not start (epoch cap, per-visitor cap); the message says why."""


@dataclass
class Snapshot:
    status: str = "queued"            # queued | starting | running | finished | stopped | timeout | cancelled | failed
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    loss: float = float("nan")        # running mean training loss of the current epoch
    history: dict[str, list[float]] = field(default_factory=dict)
    # "loss" and each named term -> [(fractional epoch, mean over a few batches)]
    traces: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    frames: list[np.ndarray] = field(default_factory=list)   # the preview before training and after each epoch
    preview_input: np.ndarray | None = None
    error: str | None = None
    run_name: str | None = None
    first_point_seconds: float | None = None   # from Start to the first point of the trace
    position: int | None = None       # place in the queue (1 = next), while queued

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "timeout", "cancelled", "failed")

    @property
    def trace(self) -> list[tuple[float, float]]:
        """The live training-loss trace."""
        return self.traces.get("loss", [])

    @property
    def preview(self) -> np.ndarray | None:
        return self.frames[-1] if self.frames else None


def job_threads() -> int:
    """Torch threads per training job: $AELAB_JOB_THREADS, else all cores but one."""
    return int(os.environ.get("AELAB_JOB_THREADS") or max(1, (os.cpu_count() or 2) - 1))


# ------------------------------------------------------------------------------------------- workers
class Worker:
    """A worker process (``python -m aelab.worker``) and our end of its connection."""

    def __init__(self):
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen([sys.executable, "-m", "aelab.worker", str(theirs.fileno())],
                                        pass_fds=(theirs.fileno(),), cwd=os.path.dirname(os.path.dirname(__file__)),
                                        stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.ready = threading.Event()
        self.error: str | None = None

    def wait_ready(self, timeout: float = 120) -> bool:
        """Wait for the worker's 'ready' (its imports done); False if it died or took too long."""
        if not self.ready.is_set() and self.conn.poll(timeout):
            try:
                kind, _ = self.conn.recv()
                self.ready.set() if kind == "ready" else None
            except (EOFError, OSError):
                pass
        return self.ready.is_set()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()


class WorkerPool:
    """Keeps ``warm`` workers started ahead, so that a Start does not wait for ``import torch``."""

    def __init__(self, warm: int = 1):
        self.warm = warm
        self._idle: collections.deque[Worker] = collections.deque()
        self._lock = threading.Lock()
        self._refill()

    def take(self) -> Worker:
        """A ready worker (a warm one if there is one, else a new one)."""
        with self._lock:
            worker = self._idle.popleft() if self._idle else None
        self._refill()
        return worker or Worker()

    def _refill(self) -> None:
        with self._lock:
            missing = self.warm - len(self._idle)
            self._idle.extend(Worker() for _ in range(max(0, missing)))

    def close(self) -> None:
        with self._lock:
            while self._idle:
                self._idle.popleft().kill()


# ---------------------------------------------------------------------------------------------- jobs
class Job:
    """One training run of a validated config in a worker process; ``classifier`` scores a VAE or GAN."""

    def __init__(self, cfg: RunConfig, runs_dir, owner: str = "", name: str | None = None,
                 classifier: Run | None = None, on_end=None):
        self.id = uuid.uuid4().hex[:12]
        self.cfg, self.runs_dir, self.owner, self.name, self.classifier = cfg, runs_dir, owner, name, classifier
        self.started = time.time()
        self._lock = threading.Lock()
        self._finished = threading.Event()   # set when the work is over, whatever its outcome
        self._snap = Snapshot(epochs=cfg.train.epochs)
        self._worker: Worker | None = None
        self._stop_asked = False
        self._on_end = on_end

    # ------------------------------------------------------------------------ public
    def snapshot(self) -> Snapshot:
        with self._lock:
            return copy.deepcopy(self._snap)

    def stop(self) -> None:
        """End training after the current batch (the run is saved with the epochs done)."""
        with self._lock:
            self._stop_asked = True
            worker = self._worker
        if worker is not None:
            try:
                worker.conn.send(("stop", {}))
            except OSError:
                pass

    def join(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    @property
    def alive(self) -> bool:
        """Queued or training."""
        return not self._finished.is_set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    # ------------------------------------------------------------------------ server side
    def _launch(self, pool: WorkerPool) -> None:
        """Hand the job to a worker and follow its messages in a thread of the server."""
        with self._lock:
            self._snap.status, self._snap.position = "starting", None
            self.started = time.time()
        threading.Thread(target=self._follow, args=(pool,), name=f"aelab-job-{self.id}", daemon=True).start()

    def _follow(self, pool: WorkerPool) -> None:
        worker = pool.take()
        try:
            if not worker.wait_ready():
                self._end({"status": "failed", "error": "the job's worker process did not start; try again"})
                return
            minutes = limits.limit("job_minutes")
            memory = limits.limit("worker_memory")
            worker.conn.send(("train", {
                "cfg": self.cfg, "runs_dir": str(self.runs_dir) if self.runs_dir is not None else None,
                "name": self.name, "classifier": self.classifier, "threads": job_threads(), "nice": NICE,
                "minutes": minutes if math.isfinite(minutes) else None,
                "memory_mb": memory if math.isfinite(memory) else None,
                "env": {k: v for k, v in os.environ.items() if k.startswith("AELAB_")}}))
            with self._lock:
                self._worker = worker
                stop_now = self._stop_asked
            if stop_now:
                self.stop()
            while True:
                kind, data = worker.conn.recv()
                if kind == "end":
                    self._end(data)
                    return
                self._apply(kind, data)
        except (EOFError, OSError):   # the worker died: killed, out of memory, crashed
            worker.process.wait()
            self._end({"status": "failed", "error": self._death(worker.process.returncode)})
        finally:
            worker.kill()

    def _apply(self, kind: str, data: dict) -> None:
        with self._lock:
            s = self._snap
            if kind == "begin":
                s.status, s.batches, s.epochs = "running", data["batches"], data["epochs"]
                s.frames, s.preview_input = data["frames"], data["inputs"]
            elif kind == "progress":
                s.epoch, s.batch, s.loss = data["epoch"], data["batch"], data["loss"]
                for k, points in data["points"].items():
                    s.traces.setdefault(k, []).extend(points)
                if s.first_point_seconds is None:
                    s.first_point_seconds = time.time() - self.started
            elif kind == "epoch":
                s.history = data["history"]
                if data["frame"] is not None:
                    s.frames.append(data["frame"])

    def _death(self, code: int | None) -> str:
        with self._lock:
            s = self._snap
            where = f"at epoch {s.epoch}, batch {s.batch}" if s.batches else "before training"
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            cause = " (most likely out of memory)" if -code == signal.SIGKILL else ""
            return (f"the job's worker process was killed by {name}{cause} {where}; no run was saved. "
                    "Try a smaller model or batch, or try again.")
        return f"the job's worker process ended unexpectedly (exit code {code}) {where}; no run was saved"

    def _end(self, outcome: dict) -> None:
        with self._lock:
            s = self._snap
            s.status = outcome["status"]
            s.error = outcome.get("error")
            s.run_name = outcome.get("run_name")
            s.position = None
        self._finished.set()
        if self._on_end is not None:
            self._on_end(self)


# ------------------------------------------------------------------------------------------ registry
class Registry:
    """The server's jobs: at most ``max_jobs`` train at once, the others wait in one queue (first come,
    first served); in hosted mode each visitor has at most ``max_per_visitor`` queued or running."""

    def __init__(self, max_jobs: int | None = None, max_epochs: int | None = None, warm: int | None = None,
                 max_per_visitor: int | None = None):
        self.max_jobs = max_jobs if max_jobs is not None else int(os.environ.get("AELAB_MAX_JOBS", "2"))
        cap = os.environ.get("AELAB_MAX_EPOCHS")
        self.max_epochs = max_epochs if max_epochs is not None else (int(cap) if cap else None)
        per_visitor = os.environ.get("AELAB_MAX_QUEUED_PER_VISITOR") or ("2" if limits.hosted() else "")
        self.max_per_visitor = max_per_visitor if max_per_visitor is not None else \
            (int(per_visitor) if per_visitor else None)
        self._pool: WorkerPool | None = None
        self._warm = warm if warm is not None else int(os.environ.get("AELAB_WARM_WORKERS", "1"))
        self._jobs: dict[str, Job] = {}
        self._queue: collections.deque[Job] = collections.deque()
        self._running: set[str] = set()
        self._lock = threading.Lock()

    @property
    def pool(self) -> WorkerPool:
        with self._lock:
            if self._pool is None:
                self._pool = WorkerPool(self._warm)
            return self._pool

    def warm_up(self) -> None:
        """Start the warm workers now (the server calls it once, so the first Start does not wait)."""
        self.pool

    def start(self, cfg: RunConfig, runs_dir, owner: str = "", name: str | None = None,
              classifier: Run | None = None) -> Job:
        """Run the validated ``cfg`` now if a slot is free, else queue it; raise :class:`JobRefused` saying
        why when it cannot be accepted at all."""
        if self.max_epochs is not None and cfg.train.epochs > self.max_epochs:
            raise JobRefused(f"this server caps training at {self.max_epochs} epochs per run; "
                             f"lower epochs from {cfg.train.epochs}, or run AE Lab locally for longer training")
        pool = self.pool
        with self._lock:   # a job counts from the moment it is registered
            if self.max_per_visitor is not None and owner:
                mine = [j for j in self._jobs.values() if j.owner == owner and not j.finished]
                if len(mine) >= self.max_per_visitor:
                    raise JobRefused(f"you have {len(mine)} jobs queued or training, the limit per visitor is "
                                     f"{self.max_per_visitor} (AELAB_MAX_QUEUED_PER_VISITOR); wait for one or "
                                     "cancel it")
            job = Job(cfg, runs_dir, owner, name, classifier, on_end=self._ended)
            self._jobs[job.id] = job
            if len(self._running) < self.max_jobs:
                self._running.add(job.id)
                launch = True
            else:
                self._queue.append(job)
                launch = False
                self._number_queue()
        if launch:
            job._launch(pool)
        return job

    def cancel(self, job: Job) -> None:
        """A queued job leaves the queue; a training one stops after the current batch and saves its run."""
        with self._lock:
            queued = job in self._queue
            if queued:
                self._queue.remove(job)
                self._number_queue()
        if queued:
            job._end({"status": "cancelled"})
        else:
            job.stop()

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def _ended(self, job: Job) -> None:
        with self._lock:
            self._running.discard(job.id)
            nxt = self._queue.popleft() if self._queue and len(self._running) < self.max_jobs else None
            if nxt is not None:
                self._running.add(nxt.id)
                self._number_queue()
        if nxt is not None:
            nxt._launch(self.pool)

    def _number_queue(self) -> None:
        for place, queued in enumerate(self._queue, 1):
            with queued._lock:
                queued._snap.position = place

    def close(self) -> None:
        """Stop every job and the warm workers (tests, a server shutting down)."""
        for job in list(self._jobs.values()):
            if not job.finished:
                self.cancel(job)
        if self._pool is not None:
            self._pool.close()


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
