"""The job system on a Ray cluster (``AELAB_JOB_BACKEND=ray``, ``AELAB_RAY_ADDRESS=host:port``): the same
workers, as Ray actors, and one queue for every app replica.

Each job or task runs in an actor of its own (:class:`WorkerActor`, one process): it runs
:func:`aelab.worker.run` in a thread, exactly as a local worker process does, and the messages that cross a
socket pair there cross two queues in the actor here, written and read by the server through actor calls.
The actor asks Ray for what the work needs: a CPU per thread, a GPU for a job on ``cuda``, and
``AELAB_MAX_WORKER_MB`` of memory, so Ray places it on a node that has them. A killed actor or a lost node
ends that job only: the server sees the actor die and tells the visitor; a run is saved atomically, so
nothing half-written is left.

The queue is a named actor (:class:`Admission`, in the namespace ``aelab``) that every replica asks: it
counts the running and queued jobs and tasks of all of them, so ``AELAB_MAX_JOBS``, ``AELAB_MAX_TASKS`` and
``AELAB_MAX_QUEUED_PER_VISITOR`` hold for the whole demo, not per process. Each replica asks it twice a second
which of its queued works may start, and so says it is alive: the slots of a replica silent for
``REPLICA_TIMEOUT_S`` are freed.

Requirements: every Ray node can import ``aelab`` (start ``ray`` from the project's root with its virtual
environment, ``PYTHONPATH`` set to the root) and finds the data sets; the app and every node see the runs
directory at the same path (one machine, or a shared file system): the workers write the runs there and the
app reads them. Without that a job ends "failed" with the worker's reason (say, a runs directory it cannot
create), or its run is saved where the app does not look.
"""
from __future__ import annotations

import math
import os
import queue
import threading
import time
import uuid
from pathlib import Path

from . import jobs, limits
from .errors import ConfigError

NAMESPACE = "aelab"
ADMISSION = "aelab-admission"
POLL_S = 0.5               # how often a replica asks the queue which of its works may start
REPLICA_TIMEOUT_S = 30.0   # a replica silent this long has gone: its slots are freed
CALL_TIMEOUT_S = 30.0      # an actor call that takes longer means the cluster is gone
CLOSED = ("closed", {})    # what a worker actor's outbox says once its worker has returned
ROOT = Path(__file__).resolve().parents[1]


_remote_classes: dict[type, object] = {}


def _remote(ray, cls):
    """``cls`` as a Ray actor class, made once per process (each ``ray.remote`` ships the class again)."""
    if cls not in _remote_classes:
        _remote_classes[cls] = ray.remote(cls)
    return _remote_classes[cls]


def connect():
    """The ``ray`` module, connected to ``AELAB_RAY_ADDRESS`` (once per process). Raises ConfigError without
    Ray or without an address."""
    try:
        import ray
    except ImportError:
        raise ConfigError("AELAB_JOB_BACKEND=ray needs Ray: pip install -r requirements-ray.txt") from None
    address = os.environ.get("AELAB_RAY_ADDRESS")
    if not address:
        raise ConfigError("AELAB_JOB_BACKEND=ray needs AELAB_RAY_ADDRESS, the head's host:port (ray start --head "
                          "prints it)")
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="error",
                 configure_logging=False)
    return ray


# ---------------------------------------------------------------------------------------------- workers
class WorkerActor:
    """A worker in a Ray actor: :func:`aelab.worker.run` in a thread, fed and read through two queues."""

    def __init__(self):
        os.chdir(ROOT)   # as a local worker: relative AELAB_* paths mean the same here
        self.inbox: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        from . import worker

        try:
            worker.run(_QueueConn(self.inbox, self.outbox))
        except Exception:   # the server sees the worker end, as when a local worker process exits
            pass
        finally:
            self.outbox.put(CLOSED)

    def put(self, message) -> None:
        self.inbox.put(message)

    def get(self, timeout: float):
        """The worker's next message, or None when there is none within ``timeout`` seconds."""
        try:
            return self.outbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def pid(self) -> int:
        return os.getpid()


class _QueueConn:
    """The worker's end of the connection, inside the actor (what a socket pair is for a local worker)."""

    def __init__(self, inbox: queue.Queue, outbox: queue.Queue):
        self.inbox, self.outbox = inbox, outbox

    def send(self, message) -> None:
        self.outbox.put(message)

    def recv(self):   # until the server kills the actor (a worker waiting here has nothing left to do)
        return self.inbox.get()


class _ActorConn:
    """The server's end: ``send``, ``recv`` and ``poll`` as on a multiprocessing Connection. A dead actor (or a
    lost cluster) reads as a closed connection: EOFError, or OSError on send."""

    def __init__(self, ray, actor, lost):
        self.ray, self.actor, self._lost = ray, actor, lost
        self._next = None

    def send(self, message) -> None:
        try:   # waited for: calls of a threaded actor have no order, and a stop must not pass the work it stops
            self.ray.get(self.actor.put.remote(message), timeout=CALL_TIMEOUT_S)
        except Exception as e:
            self._lost(e)
            raise OSError(str(e)) from None

    def poll(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._next is None:
            wait = 5.0 if deadline is None else min(5.0, deadline - time.monotonic())
            if wait <= 0:
                return False
            try:
                self._next = self.ray.get(self.actor.get.remote(wait), timeout=wait + CALL_TIMEOUT_S)
            except Exception as e:
                self._lost(e)
                raise EOFError(str(e)) from None
        return True

    def recv(self):
        self.poll()
        message, self._next = self._next, None
        if message == CLOSED:
            raise EOFError
        return message

    def close(self) -> None: ...


class _ActorProcess:
    """What the job system reads of a worker's process (``poll``, ``kill``, ``wait``, ``returncode``,
    ``pid``), for an actor: it has no exit code; :attr:`RayWorker.lost` says why it went."""

    returncode = None

    def __init__(self, ray, actor):
        self.ray, self.actor, self.dead = ray, actor, False
        self.pid = None

    def poll(self):
        return 0 if self.dead else None

    def kill(self) -> None:
        if not self.dead:
            self.dead = True
            try:
                self.ray.kill(self.actor, no_restart=True)
            except Exception:   # gone already
                pass

    def wait(self, timeout=None):
        return self.returncode


class RayWorker(jobs.WorkerBase):
    """A worker as a Ray actor asking for ``cpus`` CPUs, ``gpus`` GPUs and ``memory_mb`` MB (None: no
    request); the same interface as a local :class:`aelab.jobs.Worker`."""

    def __init__(self, cpus: int = 1, gpus: int = 0, memory_mb: float | None = None):
        ray = connect()
        options = {"num_cpus": cpus, "num_gpus": gpus, "max_concurrency": 4, "max_restarts": 0}
        if memory_mb is not None:
            options["memory"] = int(memory_mb * 1e6)
        actor = _remote(ray, WorkerActor).options(**options).remote()
        self.process = _ActorProcess(ray, actor)
        self.conn = _ActorConn(ray, actor, self._set_lost)
        self.ready = threading.Event()
        self.tasks_done = 0

    def _ready(self, data: dict) -> None:
        self.process.pid = data.get("pid")   # the actor's process: known once it says so

    def _set_lost(self, error: Exception) -> None:
        self.process.dead = True
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self.lost = self.lost or first[:200]

    def kill(self) -> None:
        self.process.kill()


class RayWorkerPool(jobs.WorkerPool):
    """Workers for the job system on Ray: an actor per job (with what it asks for), and the actors that
    finished a task serve the next tasks, as the local pool's workers do (``give_back``, ``close``). No warm
    actor is kept ahead: a cluster's nodes come and go, and a job's request is known only when it starts."""

    def __init__(self):
        super().__init__(warm=0)

    def take(self, for_task: bool = False, threads: int = 1, device: str = "cpu") -> RayWorker:
        """A worker for a task (an idle one if there is one; it asks for one CPU: a visitor waits for it, and
        Ray would hold it back until ``threads`` CPUs are free), or for a job (``threads`` CPUs, a GPU on
        ``cuda``, or on ``auto`` when the cluster has one)."""
        if for_task:
            with self._lock:
                if self._task_idle:
                    return self._task_idle.popleft()
        ray = connect()
        gpus = int(device == "cuda" or (device == "auto" and not for_task
                                        and ray.cluster_resources().get("GPU", 0) >= 1))
        memory = limits.limit("worker_memory")
        return RayWorker(1 if for_task else threads, gpus, memory if math.isfinite(memory) else None)


# ------------------------------------------------------------------------------------------- the queue
class Admission:
    """The one queue of every replica (a named, detached actor): which jobs and tasks run, which wait, in
    the order they came, under the limits the replicas give with each call."""

    def __init__(self):
        self.running: dict[str, dict[str, tuple[str, str]]] = {"job": {}, "task": {}}   # id -> (replica, owner)
        self.queue: list[tuple[str, str, str, str]] = []      # (kind, id, replica, owner), first come first
        self.granted: dict[str, list[str]] = {}               # replica -> ids it may start now
        self.seen: dict[str, float] = {}                      # replica -> when it last asked

    def admit(self, replica: str, kind: str, works: list[tuple[str, str]], limit: int,
              per_visitor: int | None = None):
        """Take ``works`` ([(id, owner)]) of ``replica`` all at once: a list saying which start now (the others
        queue), or ("refused", n) when their owner has n jobs already and the cap per visitor would not
        hold them all."""
        self.seen[replica] = time.time()
        owner = works[0][1] if works else ""
        if kind == "job" and per_visitor is not None and owner:
            mine = sum(o == owner for _, o in self.running["job"].values()) + \
                sum(k == "job" and o == owner for k, _, _, o in self.queue)
            if mine + len(works) > per_visitor:
                return ("refused", mine)
        started = []
        for work_id, work_owner in works:
            if len(self.running[kind]) < limit:
                self.running[kind][work_id] = (replica, work_owner)
                started.append(True)
            else:
                self.queue.append((kind, work_id, replica, work_owner))
                started.append(False)
        return started

    def done(self, kind: str, work_id: str, limit: int) -> None:
        """``work_id`` ended, or left the queue: its slot goes to the next in line."""
        self.running[kind].pop(work_id, None)
        self.queue = [q for q in self.queue if q[1] != work_id]
        self._promote(kind, limit)

    def poll(self, replica: str, job_limit: int, task_limit: int):
        """(the ids of ``replica``'s works that may start now, {id: place in line} of those still queued)."""
        now = time.time()
        self.seen[replica] = now
        for gone in [r for r, t in self.seen.items() if now - t > REPLICA_TIMEOUT_S]:
            del self.seen[gone]
            for kind in self.running:
                self.running[kind] = {i: v for i, v in self.running[kind].items() if v[0] != gone}
            self.queue = [q for q in self.queue if q[2] != gone]
            self.granted.pop(gone, None)
        self._promote("job", job_limit)
        self._promote("task", task_limit)
        places, positions = {"job": 0, "task": 0}, {}
        for kind, work_id, owner_replica, _ in self.queue:
            places[kind] += 1
            if owner_replica == replica:
                positions[work_id] = places[kind]
        return self.granted.pop(replica, []), positions

    def _promote(self, kind: str, limit: int) -> None:
        while len(self.running[kind]) < limit:
            nxt = next((q for q in self.queue if q[0] == kind), None)
            if nxt is None:
                return
            self.queue.remove(nxt)
            self.running[kind][nxt[1]] = (nxt[2], nxt[3])
            self.granted.setdefault(nxt[2], []).append(nxt[1])


def admission():
    """The cluster's queue (created by the first replica that asks)."""
    ray = connect()
    return _remote(ray, Admission).options(name=ADMISSION, namespace=NAMESPACE, lifetime="detached",
                                         get_if_exists=True, num_cpus=0, max_restarts=-1).remote()


class RayRegistry(jobs.Registry):
    """:class:`aelab.jobs.Registry` whose works run as Ray actors and wait in the cluster's one queue."""

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "warm": 0})
        self.ray = connect()
        self.replica = uuid.uuid4().hex[:12]
        self._admission = admission()
        self._waiting: dict[str, jobs._Work] = {}   # queued here, by id: started when the queue grants them
        self._closed = threading.Event()
        threading.Thread(target=self._follow_queue, name="aelab-ray-queue", daemon=True).start()

    def _call(self, method, *args):
        return self.ray.get(method.remote(*args), timeout=CALL_TIMEOUT_S)

    @property
    def pool(self) -> RayWorkerPool:
        with self._lock:
            if self._pool is None:
                self._pool = RayWorkerPool()
            return self._pool

    def _admit_all(self, works: list, owner: str = "", per_visitor: int | None = None) -> list[bool]:
        kind = works[0].kind
        started = self._call(self._admission.admit, self.replica, kind, [(w.id, owner) for w in works],
                             self._limit(kind), per_visitor)
        if isinstance(started, tuple):   # ("refused", the owner's jobs)
            raise jobs.visitor_cap_refusal(started[1], len(works), per_visitor)
        for work, now in zip(works, started):
            if not now:
                self._waiting[work.id] = work
        return started

    def _ended(self, work) -> None:
        with self._lock:
            self._waiting.pop(work.id, None)
        try:
            self._call(self._admission.done, work.kind, work.id, self._limit(work.kind))
        except Exception:   # the cluster is gone: nothing waits for this slot any more
            return
        self._start_granted()

    def _dequeue(self, work) -> bool:
        with self._lock:
            queued = self._waiting.pop(work.id, None) is not None
        if queued:
            self._call(self._admission.done, work.kind, work.id, self._limit(work.kind))
        return queued

    def _follow_queue(self) -> None:
        while not self._closed.wait(POLL_S):
            try:
                self._start_granted()
            except Exception:   # the head restarting: ask again next time
                continue

    def _start_granted(self) -> None:
        granted, positions = self._call(self._admission.poll, self.replica, self.max_jobs, self.max_tasks)
        with self._lock:
            starting = [w for w in (self._waiting.pop(i, None) for i in granted) if w is not None]
            for work_id, place in positions.items():
                if work_id in self._waiting:
                    self._waiting[work_id]._set_position(place)
        for work in starting:
            work._launch(self.pool)

    def close(self) -> None:
        super().close()
        self._closed.set()
