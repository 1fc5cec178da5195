"""The app's job system: training jobs and background tasks run in worker processes, one queue, limits that hold.

A job (training, :class:`Job`; a pretraining study, :class:`StudyJob`; a PCA comparison,
:class:`ComparisonJob`) or a task (a projection, a probe, a
quality score: :class:`Task`, the functions of :mod:`aelab.tasks`) runs in a warm worker process
(:mod:`aelab.worker`, forked by a fork server that imported torch once: a lower priority than the server, its
data segment capped), so a crash, an out-of-memory kill or a runaway computation ends that worker only, and the
visitor is told what happened. Progress crosses the process
boundary as small messages on a socket pair; pages read copies of each job's :class:`Snapshot`.

One :class:`Registry` per server holds one queue: past ``AELAB_MAX_JOBS`` training jobs (or
``AELAB_MAX_TASKS`` tasks) at once, the next waits its turn and shows its place; a visitor can cancel a queued
or running job; hosted mode caps each visitor's jobs. A task is shared by every page asking for the same
computation; a page's new request in the same slot (same view, new parameters) cancels the one it
supersedes, and :meth:`Registry.release` cancels a closed session's tasks.
"""
from __future__ import annotations

import collections
import copy
import functools
import math
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection

import numpy as np

from . import limits
from .config import MAX_COMPARE_K, RunConfig, StudyConfig, pinned_device
from .dimred import check_epochs, check_ks
from .errors import ConfigError, Said, SettingLimitError
from .i18n import said
from .pretrain import check_encoders, fits_total
from .runs import Run
from .tasks import TASKS

NICE = 10             # workers yield the CPU to the server, which draws the pages
KEPT_TASKS = 32       # finished tasks whose results are kept for the next page asking
MAX_OPEN_TASKS = 64   # queued or running tasks, all sessions together
TASKS_PER_WORKER = 50  # a worker serves this many tasks, then a fresh one takes over (memory fragmentation)


class JobRefused(Said, RuntimeError):
    """A job or task could not be accepted (the per-visitor cap, a full queue); the message says why."""


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


@dataclass
class StudySnapshot:
    """A pretraining study's progress as the Pretraining page reads it (a PCA comparison's too: a fit is
    then one autoencoder trained)."""
    status: str = "queued"            # queued | starting | running | finished | stopped | timeout | cancelled | failed
    fits_done: int = 0
    fits_total: int = 0
    fits: list[dict] = field(default_factory=list)   # the records of the fits done, for a live chart
    error: str | None = None
    run_name: str | None = None       # the saved study
    position: int | None = None

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "timeout", "cancelled", "failed")


def job_threads(kind: str = "train", busy: int = 0) -> int:
    """Threads for a worker's work. A job (training, a study) gets $AELAB_JOB_THREADS, else all cores but one,
    as it runs for minutes beside the pages. A task (a projection, a score), which a visitor waits for, gets
    the cores that the running jobs (``busy`` threads) leave free, at least one: the workers' nice value keeps
    the server first. More threads than free cores is what hurts: beside one busy process, two torch threads
    on 2 cores ran a `stacked` step 6.6x and a `conv` step 3.7x slower than alone, while one thread ran as fast
    as one thread alone (`python -m bench.steady`); a t-SNE of 10,000 codes took 100 s at one thread, 65 s at two."""
    if kind == "task":
        return max(1, (os.cpu_count() or 1) - busy)
    return int(os.environ.get("AELAB_JOB_THREADS") or max(1, (os.cpu_count() or 2) - 1))


# ------------------------------------------------------------------------------------------- workers
_running_job_threads: dict[int, int] = {}   # id(job) -> its worker's threads, while the job runs
_running_job_threads_lock = threading.Lock()


def busy_threads() -> int:
    """Threads that the running jobs' workers use now."""
    with _running_job_threads_lock:
        return sum(_running_job_threads.values())


class WorkerBase:
    """What the job system uses of a worker: ``conn`` (``send``, ``recv``, ``poll``, ``close``, as a
    multiprocessing Connection), ``process`` (``poll``, ``kill``, ``wait``, ``returncode``, ``pid``), ``ready``,
    ``tasks_done``; a process here (:class:`Worker`) or an actor on a Ray cluster (aelab.ray_backend)."""

    conn: Connection
    ready: threading.Event
    tasks_done: int
    lost: str | None = None   # why a worker elsewhere (a Ray actor) went, when it died under us

    def wait_ready(self, timeout: float = 120) -> bool:
        """Wait for the worker's 'ready' (its imports done); False if it died or took too long."""
        if not self.ready.is_set() and self.conn.poll(timeout):
            try:
                kind, data = self.conn.recv()
                if kind == "ready":
                    self._ready(data)
                    self.ready.set()
            except (EOFError, OSError):
                pass
        return self.ready.is_set()

    def _ready(self, data: dict) -> None:
        """What the worker's 'ready' says ({"pid": its process id}), for a worker that needs it."""

    def send_work(self, kind: str, work: dict, threads: int) -> None:
        """Hand the worker its one job or task, with this server's limits and ``AELAB_*`` settings as they
        are now (a warm worker was started earlier, perhaps under other settings)."""
        minutes, memory = limits.limit("job_minutes"), limits.limit("worker_memory")
        self.conn.send((kind, {**work, "threads": threads, "nice": NICE,
                               "minutes": minutes if math.isfinite(minutes) else None,
                               "memory_mb": memory if math.isfinite(memory) else None,
                               "env": {k: v for k, v in os.environ.items() if k.startswith("AELAB_")}}))

    def kill(self) -> None: ...


@functools.cache
def _fork_server() -> multiprocessing.context.ForkServerContext:
    """multiprocessing's fork server for the workers: one process that imports :mod:`aelab.worker_server` (torch,
    scikit-learn, the trainer) once and forks a worker on request, started when the first worker is asked for
    unless :func:`fork_server_here` forked it already. The workers share those pages (about 450 MB) instead of
    each importing its own, and start in a fork, not 4-5 s of imports."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:   # Python 3.11's fork server does not take this process's sys.path: it must find aelab
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["aelab.worker_server"])
    return context


# The attributes of Python 3.10-3.12's ForkServer and ResourceTracker that fork_server_here sets (3.13 adds an
# authentication key to the first, 3.12 an exit code to the second)
_FORK_SERVER_FIELDS = {"_forkserver_address", "_forkserver_alive_fd", "_forkserver_pid", "_inherited_fds", "_lock",
                       "_preload_modules"}
_TRACKER_FIELDS = {"_lock", "_fd", "_pid"}


def fork_server_here() -> bool:
    """Import what workers use (:mod:`aelab.worker_server`: torch, scikit-learn, the trainer) in this process and
    fork the workers' fork server from it, for a server that calls this before it starts any thread
    (``python -m pages.shared.serve``). The server, the fork server and every worker then share one copy of those
    pages (about 450 MB) instead of the server holding one and the fork server another, and the first Start does
    not wait for the fork server's imports. multiprocessing's resource tracker, which the fork server's clients
    need, is forked too (a fresh interpreter: 6 MB). False (nothing forked) where this Python's fork server is not
    the one this knows: :func:`_fork_server` then starts one the usual way, when the first worker is asked for."""
    from multiprocessing import connection, forkserver, resource_tracker, util

    from . import worker_server  # noqa: F401  (the imports, then gc.freeze())

    state, tracker = forkserver._forkserver, resource_tracker._resource_tracker
    if set(vars(state)) != _FORK_SERVER_FIELDS or state._forkserver_pid is not None:
        return False
    _fork_server()   # PYTHONPATH and the preload, for a fork server started again if this one dies
    if set(vars(tracker)) == _TRACKER_FIELDS and tracker._fd is None:
        read, write = os.pipe()   # the tracker ends when every holder of ``write`` has
        tracker._pid = _forked(lambda: resource_tracker.main(read), close=write)
        os.close(read)
        tracker._fd = write
    address = connection.arbitrary_address("AF_UNIX")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(address)
        if not util.is_abstract_socket_namespace(address):
            os.chmod(address, 0o600)
        listener.listen()
        alive_r, alive_w = os.pipe()   # the fork server ends when every holder of alive_w has
        pid = _forked(lambda: forkserver.main(listener.fileno(), alive_r, preload=[]), close=alive_w)
        os.close(alive_r)
    state._forkserver_address, state._forkserver_alive_fd, state._forkserver_pid = address, alive_w, pid
    return True


def _forked(run, close: int) -> int:
    """Fork a child that closes the descriptor ``close`` and runs ``run()``; the child's process id. The child
    never returns into the caller's code: it exits when ``run`` does."""
    pid = os.fork()
    if pid == 0:
        try:
            os.close(close)
            run()
        finally:
            os._exit(0)
    return pid


class _ForkedProcess:
    """A worker forked by the fork server, with the part of :class:`subprocess.Popen` that the job system uses
    (``pid``, ``poll``, ``wait``, ``returncode``, ``kill``, ``send_signal``). It is started in the background: the
    first start waits for the fork server's imports."""

    def __init__(self, context, conn: Connection):
        from . import worker

        # daemonic: ended with the server (multiprocessing would otherwise wait at exit for a worker that waits
        # for the server)
        self._process = context.Process(target=worker.serve, args=(conn,), name="aelab-worker", daemon=True)
        self._started = threading.Event()
        self._failed = False
        threading.Thread(target=self._start, args=(conn,), name="aelab-worker-start", daemon=True).start()

    def _start(self, conn: Connection) -> None:
        try:
            self._process.start()
        except Exception:   # the fork server could not start or fork: the worker never says ready, the job is told
            self._failed = True
        finally:
            self._started.set()   # before our end sees EOF: whoever sees it finds the outcome (returncode) set
            conn.close()   # the worker's end, which it has by now; ours sees EOF when the worker ends

    @property
    def pid(self) -> int | None:
        self._started.wait()
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while it runs; its exit code, or minus the signal that killed it (as Popen's)."""
        if not self._started.is_set():
            return None
        return 1 if self._failed else self._process.exitcode

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self._started.wait(timeout) and not self._failed:
            self._process.join(timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self._started.wait()
        if not self._failed and self._process.exitcode is None:
            try:
                os.kill(self._process.pid, sig)
            except ProcessLookupError:   # it ended meanwhile
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Worker(WorkerBase):
    """A worker process, forked by the fork server (:func:`_fork_server`), and our end of its connection."""

    def __init__(self):
        context = _fork_server()
        ours, theirs = context.Pipe()
        self.process = _ForkedProcess(context, theirs)
        self.conn = ours
        self.ready = threading.Event()
        self.tasks_done = 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()


def death_message(what, worker, where=None, advice=None):
    """Why ``worker``'s connection closed before it reported an outcome (from its exit code, or from Ray's
    reason), how far the work got (``where``) and what to try (``advice``): messages of the catalog."""
    code = worker.process.returncode
    if worker.lost:
        death = said("{what}'s worker on the Ray cluster died ({reason})", what=what, reason=worker.lost)
    elif code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        death = said("{what}'s worker process was killed by {signal} (most likely out of memory)", what=what,
                     signal=name) if -code == signal.SIGKILL else \
            said("{what}'s worker process was killed by {signal}", what=what, signal=name)
    else:
        death = said("{what}'s worker process ended unexpectedly (exit code {code})", what=what, code=code)
    if where:
        death = said("{death} {where}", death=death, where=where)
    return said("{death}; {advice}", death=death, advice=advice) if advice else death


class WorkerPool:
    """Keeps ``warm`` workers started ahead, so that a Start does not wait for ``import torch``, and the
    workers that finished a task, for the next task (a training job always gets a fresh worker)."""

    def __init__(self, warm: int = 1):
        self.warm = warm
        self._idle: collections.deque[Worker] = collections.deque()
        self._task_idle: collections.deque[Worker] = collections.deque()   # reusable after a task
        self._lock = threading.Lock()
        self._refill()

    def take(self, for_task: bool = False, threads: int = 1, device: str = "cpu") -> Worker:
        """A worker: for a task, one that finished a task before if there is one; else a warm one, else new.
        (``threads`` and ``device``: what the work needs, which a cluster's pool asks for; here every worker
        runs on this machine.)"""
        with self._lock:
            worker = self._task_idle.popleft() if for_task and self._task_idle else None
            if worker is None and self._idle:
                worker = self._idle.popleft()
        self._refill()
        return worker or Worker()

    def give_back(self, worker: Worker) -> None:
        """A worker that finished a task cleanly serves the next one, up to ``TASKS_PER_WORKER`` tasks."""
        worker.tasks_done += 1
        if worker.tasks_done >= TASKS_PER_WORKER or worker.process.poll() is not None:
            worker.kill()
            return
        with self._lock:
            self._task_idle.append(worker)

    def _refill(self) -> None:
        with self._lock:
            missing = self.warm - len(self._idle)
            self._idle.extend(Worker() for _ in range(max(0, missing)))

    def close(self) -> None:
        with self._lock:
            while self._idle:
                self._idle.popleft().kill()
            while self._task_idle:
                self._task_idle.popleft().kill()


# ---------------------------------------------------------------------------------------------- work
class _Work:
    """What the queue holds: a job or a task, run once in a worker of its own."""

    kind = ""

    def __init__(self, owner: str, on_end):
        self.id = uuid.uuid4().hex[:12]
        self.owner = owner
        self._lock = threading.Lock()
        self._finished = threading.Event()   # set when the work is over, whatever its outcome
        self._on_end = on_end

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the work is over; False if ``timeout`` seconds passed first."""
        return self._finished.wait(timeout)

    def _launch(self, pool: WorkerPool) -> None:
        """Hand the work to a worker and follow its messages in a thread of the server."""
        threading.Thread(target=self._follow, args=(pool,), name=f"aelab-{self.kind}-{self.id}", daemon=True).start()

    def _follow(self, pool: WorkerPool) -> None: ...

    def _set_position(self, place: int | None) -> None: ...

    def _cancel(self) -> None: ...

    def _end(self, outcome: dict) -> None:
        """Record ``outcome`` ({"status", and "error", "run_name" or "result"}), then :meth:`_ended`."""

    def _ended(self) -> None:
        self._finished.set()
        if self._on_end is not None:
            self._on_end(self)


class _WorkerJob(_Work):
    """A job that has a fresh worker process to itself, reports progress as it goes, and can be stopped:
    training (:class:`Job`) or a pretraining study (:class:`StudyJob`)."""

    kind = "job"
    work_kind = ""          # what the worker is asked to do
    nothing_saved = said("try again")   # the end of a death message

    def __init__(self, owner: str, on_end, snap):
        super().__init__(owner, on_end)
        self.started = time.time()
        self._snap = snap
        self._worker: Worker | None = None
        self._stop_asked = False
        self._reported = threading.Event()   # set at the first live point (Job) or when the work ends

    def wait_for_first_point(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the job's first live point, or its end; at once when it is queued.
        True when the page has something to draw (a warm worker reports within about half a second)."""
        with self._lock:
            if self._snap.status == "queued":
                return False
        return self._reported.wait(timeout)

    def snapshot(self):
        with self._lock:
            return copy.deepcopy(self._snap)

    def stop(self) -> None:
        """End the work at the next safe point (training: after the current batch, and the run is saved)."""
        with self._lock:
            self._stop_asked = True
            worker = self._worker
        if worker is not None:
            try:
                worker.conn.send(("stop", {}))
            except OSError:
                pass

    def _payload(self) -> dict: ...

    def _apply(self, kind: str, data: dict) -> None: ...

    def _where(self) -> str:
        """Under the lock: how far the work got, for a death message."""
        return ""

    # ------------------------------------------------------------------------ server side
    def _launch(self, pool: WorkerPool) -> None:
        with self._lock:
            self._snap.status, self._snap.position = "starting", None
            self.started = time.time()
        super()._launch(pool)

    def _device(self) -> str:
        return "cpu"

    def _follow(self, pool: WorkerPool) -> None:
        threads = job_threads(self.work_kind)
        worker = pool.take(threads=threads, device=self._device())
        try:
            if not worker.wait_ready():
                self._end({"status": "failed", "error": said("the job's worker process did not start; try again")})
                return
            with _running_job_threads_lock:
                _running_job_threads[id(self)] = threads
            worker.send_work(self.work_kind, self._payload(), threads)
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
            with self._lock:
                where = self._where()
            self._end({"status": "failed", "error": death_message(said("the job"), worker, where,
                                                                  self.nothing_saved)})
        finally:
            worker.kill()
            with _running_job_threads_lock:
                _running_job_threads.pop(id(self), None)

    def _set_position(self, place: int | None) -> None:
        with self._lock:
            self._snap.position = place

    def _cancel(self) -> None:
        self.stop()

    def _end(self, outcome: dict) -> None:
        with self._lock:
            s = self._snap
            s.status = outcome["status"]
            s.error = outcome.get("error")
            s.run_name = outcome.get("run_name")
            s.position = None
        self._reported.set()
        self._ended()


class Job(_WorkerJob):
    """One training run of a validated config in a worker process; ``classifier`` scores a VAE or GAN."""

    work_kind = "train"
    nothing_saved = said("no run was saved. Try a smaller model or batch, or try again.")

    def __init__(self, cfg: RunConfig, runs_dir, owner: str = "", name: str | None = None,
                 classifier: Run | None = None, on_end=None, resume: tuple[Run, bool] | None = None):
        super().__init__(owner, on_end, Snapshot(epochs=cfg.total_epochs))
        self.cfg, self.runs_dir, self.name, self.classifier = cfg, runs_dir, name, classifier
        self.resume = resume   # (the run continued, with a fresh optimiser?), with cfg from plan_resume

    def snapshot(self) -> Snapshot:
        return super().snapshot()

    def _device(self) -> str:
        return self.cfg.train.device

    def _payload(self) -> dict:
        return {"cfg": self.cfg, "runs_dir": _absolute(self.runs_dir), "name": self.name,
                "classifier": self.classifier, "resume": self.resume}

    def _where(self) -> str:
        s = self._snap
        return said("at epoch {epoch}, batch {batch}", epoch=s.epoch, batch=s.batch) if s.batches else \
            said("before training")

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
                    self._reported.set()
            elif kind == "epoch":
                s.history = data["history"]
                if data["frame"] is not None:
                    s.frames.append(data["frame"])


class StudyJob(_WorkerJob):
    """A pretraining study (:func:`aelab.pretrain.run_study`) of a validated ``cfg`` in a worker process; the
    study is saved in ``runs_dir`` when it finishes. Stopping it ends it after the current fit, unsaved."""

    work_kind = "study"
    nothing_saved = said("nothing was saved. Try fewer budgets, seeds or encoders, or try again.")

    def __init__(self, encoders: list[Run], cfg: StudyConfig, runs_dir, owner: str = "", name: str | None = None,
                 on_end=None, fits_total: int = 0):
        super().__init__(owner, on_end, StudySnapshot(fits_total=fits_total))
        self.encoders, self.cfg, self.runs_dir, self.name = encoders, cfg, runs_dir, name

    def snapshot(self) -> StudySnapshot:
        return super().snapshot()

    def _payload(self) -> dict:
        return {"encoders": self.encoders, "cfg": self.cfg, "name": self.name, "runs_dir": _absolute(self.runs_dir)}

    def _where(self) -> str:
        return said("after {done} of {total} fits", done=self._snap.fits_done, total=self._snap.fits_total)

    def _apply(self, kind: str, data: dict) -> None:
        with self._lock:
            s = self._snap
            if kind == "begin":
                s.status = "running"
            elif kind == "fit":
                s.fits_done, s.fits_total = data["done"], data["total"]
                s.fits.append(data["fit"])


class ComparisonJob(_WorkerJob):
    """A PCA-vs-autoencoders comparison (:func:`aelab.dimred.compare`) in a worker process: each autoencoder is
    saved as a run when trained, the table when all are. Stopping it ends it during the current model."""

    work_kind = "compare"
    nothing_saved = said("the runs trained before were saved, the table was not. Try fewer code sizes, or try "
                         "again.")

    def __init__(self, data: str, ks: tuple[int, ...], epochs: int | None, runs_dir, owner: str = "",
                 name: str | None = None, on_end=None):
        super().__init__(owner, on_end, StudySnapshot(fits_total=2 * len(ks)))
        self.data, self.ks, self.epochs, self.runs_dir, self.name = data, ks, epochs, runs_dir, name

    def snapshot(self) -> StudySnapshot:
        return super().snapshot()

    def _payload(self) -> dict:
        return {"data": self.data, "ks": self.ks, "epochs": self.epochs, "name": self.name,
                "runs_dir": _absolute(self.runs_dir)}

    def _where(self) -> str:
        return said("after {done} of {total} models", done=self._snap.fits_done, total=self._snap.fits_total)

    _apply = StudyJob._apply


class Task(_Work):
    """One computation of :data:`aelab.tasks.TASKS` (``name(*args, **kwargs)``) in a worker process; pages
    poll ``done``, then read ``result`` or ``error``. Cancelling a running task kills its worker."""

    kind = "task"

    def __init__(self, name: str, args: tuple, kwargs: dict, on_end=None):
        super().__init__("", on_end)
        self.name, self.args, self.kwargs = name, args, kwargs
        self.status = "queued"          # queued | running | finished | failed | cancelled
        self.position: int | None = None
        self.started: float | None = None    # when a worker took it
        self.finished_at: float | None = None
        self.result = None
        self.error: str | None = None
        self.holders: set[tuple[str, str]] = set()   # (session, slot) pairs waiting for it
        self.pid: int | None = None          # its worker process
        self._worker: Worker | None = None
        self._cancelled = self._timed_out = False

    @property
    def elapsed(self) -> float:
        """Seconds since a worker took it (0 while queued), up to its end."""
        return (self.finished_at or time.time()) - self.started if self.started else 0.0

    def _launch(self, pool: WorkerPool) -> None:
        with self._lock:
            self.status, self.position, self.started = "running", None, time.time()
        super()._launch(pool)

    def _follow(self, pool: WorkerPool) -> None:
        threads = job_threads("task", busy=busy_threads())
        worker = pool.take(for_task=True, threads=threads)
        with self._lock:
            self._worker, self.pid = worker, worker.process.pid
            cancelled = self._cancelled
        try:
            if cancelled or not worker.wait_ready():
                raise EOFError
            worker.send_work("task", {"name": self.name, "args": self.args, "kwargs": self.kwargs}, threads)
            minutes = limits.limit("job_minutes")
            if not worker.conn.poll(minutes * 60 if math.isfinite(minutes) else None):
                self._timed_out = True
                worker.process.kill()
            _, outcome = worker.conn.recv()
        except (EOFError, OSError):
            worker.kill()
            if self._cancelled:
                self._end({"status": "cancelled"})
            elif self._timed_out:
                bound = limits.BOUNDS["job_minutes"]
                self._end({"status": "failed", "error": said(
                    "it took longer than {minutes:g} minutes ({setting}); try fewer images or iterations",
                    minutes=bound.value(), setting=bound.setting)})
            else:
                self._end({"status": "failed", "error": death_message(said("the task"), worker, None,
                                                                      said("try fewer images, or try again"))})
            return
        with self._lock:
            self._worker = None   # from now on a cancel has nothing to kill: the worker serves other tasks
            killed = self._cancelled
        worker.kill() if killed else pool.give_back(worker)
        self._end(outcome)

    def _set_position(self, place: int | None) -> None:
        self.position = place

    def _cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            worker = self._worker
        if worker is not None:
            worker.process.kill()   # its result would be thrown away: no reason to wait for it

    def _end(self, outcome: dict) -> None:
        with self._lock:
            self.status, self.result, self.error = outcome["status"], outcome.get("result"), outcome.get("error")
            self.position, self.finished_at = None, time.time()
        self._ended()


def _absolute(runs_dir) -> str | None:
    """The runs directory as the worker must see it: absolute (a worker's working directory is not the
    server's)."""
    return os.path.abspath(runs_dir) if runs_dir is not None else None


def _key_part(value):
    """A hashable stand-in for a task argument: a run by its directory and weights' time."""
    if isinstance(value, Run):
        return ("run", *value.fingerprint)
    if isinstance(value, dict):
        return tuple(sorted((k, _key_part(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_key_part(v) for v in value)
    return value


# ------------------------------------------------------------------------------------------ registry
class Registry:
    """The server's jobs and tasks in one queue (first come, first served): at most ``max_jobs`` jobs and
    ``max_tasks`` tasks run at once; in hosted mode each visitor has at most ``max_per_visitor`` jobs queued
    or running."""

    def __init__(self, max_jobs: int | None = None, warm: int | None = None, max_per_visitor: int | None = None,
                 max_tasks: int | None = None):
        self.max_jobs = max_jobs if max_jobs is not None else int(os.environ.get("AELAB_MAX_JOBS", "2"))
        self.max_tasks = max_tasks if max_tasks is not None else int(os.environ.get("AELAB_MAX_TASKS", "1"))
        per_visitor = os.environ.get("AELAB_MAX_QUEUED_PER_VISITOR") or ("2" if limits.hosted() else "")
        self.max_per_visitor = max_per_visitor if max_per_visitor is not None else \
            (int(per_visitor) if per_visitor else None)
        self._pool: WorkerPool | None = None
        self._warm = warm if warm is not None else int(os.environ.get("AELAB_WARM_WORKERS", "1"))
        self._jobs: dict[str, _WorkerJob] = {}
        self._tasks: dict[tuple, Task] = {}          # by name and arguments
        self._held: dict[tuple[str, str], Task] = {}  # (session, slot) -> the task that session waits for
        self._queue: collections.deque[_Work] = collections.deque()
        self._running: dict[str, set[str]] = {"job": set(), "task": set()}
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

    # ------------------------------------------------------------------------ jobs
    def start(self, cfg: RunConfig, runs_dir, owner: str = "", name: str | None = None,
              classifier: Run | None = None, resume: tuple[Run, bool] | None = None) -> Job:
        """Run the validated ``cfg`` now if a slot is free, else queue it, on ``AELAB_DEVICE`` when the server
        pins one. ``resume``: (run, fresh_optimizer) to continue that run, ``cfg`` being what
        :func:`aelab.experiment.plan_resume` gave. Raises :class:`JobRefused` (the visitor's cap) or
        :class:`aelab.errors.SettingLimitError` (more epochs than ``AELAB_MAX_EPOCHS``, those of a continued
        run included)."""
        limits.check("epochs", cfg.total_epochs, SettingLimitError)
        if (device := pinned_device()) is not None:   # the server's device, whatever a link asked for
            cfg = replace(cfg, train=replace(cfg.train, device=device))
        return self._register(lambda: Job(cfg, runs_dir, owner, name, classifier, self._ended, resume), owner)

    def start_sweep(self, planned: list[tuple[str, RunConfig]], runs_dir, owner: str = "",
                    classifier: Run | None = None) -> list[Job]:
        """Queue every (run name, validated config) of a sweep (:func:`aelab.sweeps.plan_sweep`) as a job, all or
        none: refused as a whole (:class:`JobRefused`) when the visitor's cap would not hold them all, or
        (:class:`aelab.errors.SettingLimitError`) when one asks for more epochs than ``AELAB_MAX_EPOCHS``."""
        device = pinned_device()
        cfgs = []
        for name, cfg in planned:
            limits.check("epochs", cfg.total_epochs, SettingLimitError)
            cfgs.append((name, replace(cfg, train=replace(cfg.train, device=device)) if device else cfg))
        return self._register_all([lambda n=name, c=cfg: Job(c, runs_dir, owner, n, classifier, self._ended)
                                   for name, cfg in cfgs], owner)

    def start_study(self, encoders: list[Run], cfg: StudyConfig, runs_dir, owner: str = "",
                    name: str | None = None) -> StudyJob:
        """Run the pretraining study ``cfg`` (validated) on ``encoders`` as a job: same queue, same slots
        (``AELAB_MAX_JOBS``) and per-visitor cap as training. Raises :class:`aelab.ConfigError` for encoders
        a study cannot use, :class:`JobRefused` past the visitor's cap."""
        check_encoders(encoders)   # the study's own bounds (StudyConfig) and the job time limit bound its work
        total = fits_total(encoders, cfg)
        return self._register(lambda: StudyJob(encoders, cfg, runs_dir, owner, name, self._ended, total), owner)

    def start_comparison(self, data: str, ks: tuple[int, ...], epochs: int | None, runs_dir, owner: str = "",
                         name: str | None = None) -> ComparisonJob:
        """Compare PCA with linear and nonlinear autoencoders on ``data`` at the code sizes ``ks`` (checked
        here) as a job: same queue, slots and per-visitor cap as training."""
        ks, epochs = check_ks(tuple(ks), MAX_COMPARE_K), check_epochs(epochs)
        limits.check("epochs", epochs or 10, SettingLimitError)   # each model's, as for a training job
        return self._register(lambda: ComparisonJob(data, ks, epochs, runs_dir, owner, name, self._ended), owner)

    def _register(self, make, owner: str):
        return self._register_all([make], owner)[0]

    def _register_all(self, makers: list, owner: str) -> list:
        """Register the jobs ``makers`` build, all at once under the visitor's cap, and start those a slot
        is free for (the others queue)."""
        pool = self.pool
        with self._lock:   # a job counts from the moment it is registered
            jobs = [make() for make in makers]
            started = self._admit_all(jobs, owner, self.max_per_visitor)
            for job in jobs:
                self._jobs[job.id] = job
        for job, now in zip(jobs, started):
            if now:
                job._launch(pool)
        return jobs

    def cancel(self, work: _Work) -> None:
        """A queued job or task leaves the queue; a training job stops after the current batch and saves its
        run; a running task's worker is killed."""
        if self._dequeue(work):
            work._end({"status": "cancelled"})
        else:
            work._cancel()

    def get(self, job_id: str | None) -> Job | StudyJob | ComparisonJob | None:
        return self._jobs.get(job_id) if job_id else None

    # ------------------------------------------------------------------------ tasks
    def task(self, name: str, *args, owner: str = "", slot: str = "", **kwargs) -> Task:
        """The task computing ``TASKS[name](*args, **kwargs)``: the one already asked for (shared by every
        session; a failed or cancelled one is tried again), else a new one, queued past ``max_tasks``.

        ``owner`` (a browser session) waits for it in ``slot`` (default: ``name``): the task it waited for
        there before is cancelled when nobody else waits for it, as is everything :meth:`release` releases."""
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}")
        key = (name, _key_part(args), _key_part(kwargs))
        superseded = None
        with self._lock:
            task = self._tasks.get(key)
            launch = False
            if task is None or task.status in ("failed", "cancelled"):
                if sum(not t.finished for t in self._tasks.values()) >= MAX_OPEN_TASKS:
                    raise JobRefused("this server has {n} computations waiting; try again in a minute",
                                     n=MAX_OPEN_TASKS)
                task = self._tasks[key] = Task(name, args, kwargs, on_end=self._ended)
                launch = self._admit_all([task])[0]
                self._forget_finished_tasks()
            holder = (owner, slot or name)
            previous = self._held.get(holder) if owner else None
            task.holders.add(holder)
            if owner:
                self._held[holder] = task
            if previous is not None and previous is not task:
                previous.holders.discard(holder)
                superseded = previous if not previous.holders and not previous.finished else None
        if superseded is not None:
            self.cancel(superseded)
        if launch:
            task._launch(self.pool)
        return task

    def release(self, owner: str) -> None:
        """``owner``'s session is over: cancel the tasks only it was waiting for."""
        orphans = []
        with self._lock:
            for holder in [h for h in self._held if h[0] == owner]:
                task = self._held.pop(holder)
                task.holders.discard(holder)
                if not task.holders and not task.finished:
                    orphans.append(task)
        for task in orphans:
            self.cancel(task)

    def task_owners(self) -> set[str]:
        """The sessions waiting for (or holding the result of) a task."""
        with self._lock:
            return {owner for owner, _ in self._held}

    def tasks(self) -> list[Task]:
        with self._lock:
            return list(self._tasks.values())

    # ------------------------------------------------------------------------ the queue
    def _limit(self, kind: str) -> int:
        return self.max_jobs if kind == "job" else self.max_tasks

    def _admit_all(self, works: list[_Work], owner: str = "", per_visitor: int | None = None) -> list[bool]:
        """Under the lock: take ``works`` (of one kind, one owner) all at once, or refuse them all
        (:class:`JobRefused`) when ``owner``'s jobs would pass ``per_visitor``; which of them start now."""
        if per_visitor is not None and owner:
            mine = sum(j.owner == owner and not j.finished for j in self._jobs.values())
            if mine + len(works) > per_visitor:
                raise visitor_cap_refusal(mine, len(works), per_visitor)
        return [self._admit(work) for work in works]

    def _dequeue(self, work: _Work) -> bool:
        """``work`` leaves the queue if it waits there (True), else nothing happens (False)."""
        with self._lock:
            if work not in self._queue:
                return False
            self._queue.remove(work)
            self._number_queue()
            return True

    def _admit(self, work: _Work) -> bool:
        """Under the lock: True when ``work`` may start now (its slot is taken), else it joins the queue."""
        if len(self._running[work.kind]) < self._limit(work.kind):
            self._running[work.kind].add(work.id)
            return True
        self._queue.append(work)
        self._number_queue()
        return False

    def _ended(self, work: _Work) -> None:
        with self._lock:
            self._running[work.kind].discard(work.id)
            nxt = next((w for w in self._queue if w.kind == work.kind), None) \
                if len(self._running[work.kind]) < self._limit(work.kind) else None
            if nxt is not None:
                self._queue.remove(nxt)
                self._running[nxt.kind].add(nxt.id)
                self._number_queue()
        if nxt is not None:
            nxt._launch(self.pool)

    def _number_queue(self) -> None:
        """Under the lock: each queued job's or task's place among those of its kind (1 = next)."""
        places = collections.Counter()
        for work in self._queue:
            places[work.kind] += 1
            work._set_position(places[work.kind])

    def _forget_finished_tasks(self) -> None:
        finished = sorted((k for k, t in self._tasks.items() if t.finished), key=lambda k: self._tasks[k].finished_at)
        for key in finished[:max(0, len(finished) - KEPT_TASKS)]:
            del self._tasks[key]

    def close(self) -> None:
        """Stop every job and task, and the warm workers (tests, a server shutting down)."""
        for work in [*self._jobs.values(), *self.tasks()]:
            if not work.finished:
                self.cancel(work)
        if self._pool is not None:
            self._pool.close()


def visitor_cap_refusal(mine: int, asked: int, limit: int) -> JobRefused:
    """The refusal of ``asked`` more jobs to a visitor who has ``mine`` queued or running, past ``limit``."""
    if asked > 1:
        return JobRefused("you have {mine} jobs queued or training; these {asked} would make {total}, the limit per "
                          "visitor is {limit} (AELAB_MAX_QUEUED_PER_VISITOR); wait for one or cancel it", mine=mine,
                          asked=asked, total=mine + asked, limit=limit)
    return JobRefused("you have {mine} jobs queued or training, the limit per visitor is {limit} "
                      "(AELAB_MAX_QUEUED_PER_VISITOR); wait for one or cancel it", mine=mine, limit=limit)


# AELAB_JOB_BACKEND -> the registry class that runs the works (by name: Ray is optional, loaded when chosen)
BACKENDS = {"local": "aelab.jobs:Registry", "ray": "aelab.ray_backend:RayRegistry"}

_registry: Registry | None = None
_registry_lock = threading.Lock()


def make_registry(**kwargs) -> Registry:
    """A registry of the backend ``AELAB_JOB_BACKEND`` names (default ``local``: worker processes of this
    machine; ``ray``: actors on the Ray cluster at ``AELAB_RAY_ADDRESS``, see aelab.ray_backend)."""
    import importlib

    backend = os.environ.get("AELAB_JOB_BACKEND") or "local"
    if backend not in BACKENDS:
        raise ConfigError("AELAB_JOB_BACKEND must be one of {names}, got {backend!r}", names=", ".join(BACKENDS),
                          backend=backend)
    module, name = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def registry() -> Registry:
    """The process-wide registry (created on first use from the environment)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = make_registry()
        return _registry
