"""A worker process of the app's job system, forked by the fork server of :class:`aelab.jobs.Worker` (which
imported :mod:`aelab.worker_imports` once); :func:`serve` is where it starts.

It has torch and the trainer imported (a warm worker: the next Start does not wait for the import), says
``ready`` on its connection to the server, lowers its priority below the server's and
caps its data segment (RLIMIT_DATA, not RLIMIT_AS: importing torch maps gigabytes it never touches), then
runs tasks (functions of :data:`aelab.tasks.TASKS`: each sends back its result, and the worker waits for the
next) or one job (training, or a pretraining study), after which it exits. A job's progress, previews and
outcome go back as small messages, and a ``stop`` message ends training after the current batch (a study
after the current fit). A crash, an out-of-memory kill or
a runaway job ends this process only: the server sees the connection close and tells the visitor.
"""
from __future__ import annotations

import os
import resource
import threading
import time
from multiprocessing.connection import Connection

from .i18n import said

PROGRESS_EVERY_S = 0.25   # at most four progress messages a second: the page redraws every 2 s
TRACE_EVERY = 20          # batches between two points of the live training-loss trace


def _data_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmData:"))


class _Reporter:
    """A trainer callback that sends what the Train page shows: progress, the loss traces, the previews."""

    def __init__(self, conn: Connection, previews):
        self.conn, self.previews = conn, previews
        # "loss" and each term -> the batches' values since the last trace point, 0-d tensors on the device (read
        # once a point: a host synchronisation on a GPU)
        self.chunks: dict[str, list] = {}
        self.points: dict[str, list[tuple[float, float]]] = {}
        self.last_sent = 0.0

    def on_train_begin(self, state) -> None:
        self.conn.send(("begin", {"batches": state.batches, "epochs": state.epochs,
                                  "frames": list(self.previews.frames), "inputs": self.previews.inputs}))

    def on_batch_end(self, state) -> None:
        for k, v in {"loss": state.batch_loss, **state.batch_terms}.items():
            self.chunks.setdefault(k, []).append(v)
        if len(self.chunks["loss"]) >= TRACE_EVERY or state.batch == state.batches:
            x = state.epoch - 1 + state.batch / state.batches
            from .train import batch_means  # torch is imported by now (see run)

            for k, mean in batch_means(self.chunks).items():
                self.points.setdefault(k, []).append((x, mean))
            if state.beta is not None:
                self.points.setdefault("beta", []).append((x, state.beta))
            self.chunks.clear()
        now = time.monotonic()
        if self.points and (now - self.last_sent >= PROGRESS_EVERY_S or state.batch == state.batches):
            self.conn.send(("progress", {"epoch": state.epoch, "batch": state.batch, "loss": state.loss,
                                         "points": self.points}))
            self.points, self.last_sent = {}, now

    def on_epoch_end(self, state) -> None:
        self.conn.send(("epoch", {"history": state.history, "frame": self.previews.latest}))

    def on_train_end(self, state) -> None: ...


def _listen_for_stop(conn: Connection, stop: threading.Event) -> None:
    try:
        while True:
            if conn.recv()[0] == "stop":
                stop.set()
    except (EOFError, OSError):   # the server went away: stop too
        stop.set()


def run(conn: Connection) -> None:
    # before the memory cap (see aelab.worker_imports); a worker forked by the fork server has them already
    from . import runtime, worker_imports  # noqa: F401
    from .experiment import Resume, train_validated
    from .tasks import TASKS
    from .train import PreviewRecorder

    conn.send(("ready", {"pid": os.getpid()}))
    baseline = None
    while True:   # tasks, one after the other, until a training job (the last thing this worker does)
        kind, job = conn.recv()
        if kind not in ("train", "study", "compare", "task"):
            return
        os.environ.update(job["env"])   # the server's settings when the work started, not when this worker did
        for key in [k for k in os.environ if k.startswith("AELAB_") and k not in job["env"]]:
            del os.environ[key]
        if baseline is None:
            baseline = _data_kb() * 1024
            os.nice(job["nice"])
        cap = baseline + int(job["memory_mb"] * 1e6) if job["memory_mb"] is not None else resource.RLIM_INFINITY
        resource.setrlimit(resource.RLIMIT_DATA, (cap, resource.RLIM_INFINITY))
        runtime.configure(job["threads"])
        if kind != "task":
            break
        _run_task(conn, job, TASKS[job["name"]])
    stop = threading.Event()
    threading.Thread(target=_listen_for_stop, args=(conn, stop), daemon=True).start()
    if kind in ("study", "compare"):
        _run_study(conn, job, stop, kind)
        return
    previews = PreviewRecorder()
    deadline = time.monotonic() + job["minutes"] * 60 if job["minutes"] is not None else None
    try:
        resume = None
        if job["resume"] is not None:
            run, fresh_optimizer = job["resume"]
            resume = Resume(run, None if fresh_optimizer else run.checkpoint())
        exp = train_validated(job["cfg"], runs_dir=job["runs_dir"], name=job["name"], stop_event=stop,
                              callbacks=[_Reporter(conn, previews)], previews=previews,
                              classifier=job["classifier"], deadline=deadline, resume=resume)
        conn.send(("end", {"status": exp.fit.status, "run_name": exp.run.name}))
    except MemoryError:
        conn.send(("end", {"status": "failed", "error": _out_of_memory(job)}))
    except Exception as e:   # shown to the visitor as a message, never a traceback
        conn.send(("end", {"status": "failed", "error": _message(e, job, said("the job"),
                                                                  said("try a smaller model or batch")),
                           "run_name": getattr(e, "run_name", None)}))


def _run_study(conn: Connection, job: dict, stop: threading.Event, kind: str = "study") -> None:
    """A pretraining study or a PCA comparison: a message per fit (per model trained); saved when it
    finishes; a stop or the time limit ends it after the current fit (during the current model), unsaved."""
    from .dimred import ComparisonStopped, compare
    from .pretrain import StudyStopped, run_study

    what, advice = (said("the study"), said("try fewer budgets")) if kind == "study" else \
        (said("the comparison"), said("try fewer code sizes"))
    timed_out = threading.Event()
    if job["minutes"] is not None:
        timer = threading.Timer(job["minutes"] * 60, lambda: (timed_out.set(), stop.set()))
        timer.daemon = True
        timer.start()
    conn.send(("begin", {}))
    try:
        if kind == "study":
            saved = run_study(job["encoders"], job["cfg"], runs_dir=job["runs_dir"], name=job["name"], stop=stop,
                              progress=lambda p: conn.send(("fit", {"done": p.done, "total": p.total, "fit": p.fit})))
        else:
            saved = compare(job["data"], job["ks"], job["epochs"], runs_dir=job["runs_dir"], name=job["name"],
                            stop=stop,
                            progress=lambda p: conn.send(("fit", {"done": p.done, "total": p.total, "fit": p.row})))
        conn.send(("end", {"status": "finished", "run_name": saved.name}))
    except (StudyStopped, ComparisonStopped) as e:
        if timed_out.is_set():
            conn.send(("end", {"status": "timeout", "error": said(
                "{what} took longer than {minutes:g} minutes (AELAB_MAX_JOB_MINUTES); {reason}", what=what,
                minutes=job["minutes"], reason=_text(e))}))
        else:
            conn.send(("end", {"status": "stopped", "error": _text(e)}))
    except MemoryError:
        conn.send(("end", {"status": "failed", "error": _out_of_memory(job, what, advice)}))
    except Exception as e:   # shown to the visitor as a message, never a traceback
        conn.send(("end", {"status": "failed", "error": _message(e, job, what, advice)}))


def _run_task(conn: Connection, job: dict, fn) -> None:
    try:
        conn.send(("end", {"status": "finished", "result": fn(*job["args"], **job["kwargs"])}))
    except MemoryError:
        conn.send(("end", {"status": "failed", "error": _out_of_memory(job, said("the task"),
                                                                       said("try fewer images"))}))
    except Exception as e:   # shown to the visitor as a message, never a traceback
        conn.send(("end", {"status": "failed", "error": _message(e, job, said("the task"),
                                                                 said("try fewer images"))}))


def _text(e: Exception) -> str:
    """An exception's message: the :class:`aelab.i18n.Message` of one of aelab's errors (a page translates
    it), else its English text."""
    return getattr(e, "said", None) or str(e)


def _message(e: Exception, job: dict, what, advice):
    message = str(e)
    if "can't allocate memory" in message or "not enough memory" in message:
        return _out_of_memory(job, what, advice)
    if hasattr(e, "said"):   # one of aelab's errors: it says itself what happened
        return e.said
    return message if message.startswith(type(e).__name__) else f"{type(e).__name__}: {message}"


def _out_of_memory(job: dict, what=None, advice=None):
    what, advice = what or said("the job"), advice or said("try a smaller model or batch")
    if job["memory_mb"] is None:   # no cap: the machine itself ran out
        return said("{what} ran out of memory; {advice}", what=what, advice=advice)
    return said("{what} ran out of memory (this server gives a job or task {mb:,.0f} MB, AELAB_MAX_WORKER_MB); "
                "{advice}", what=what, mb=job["memory_mb"], advice=advice)


def serve(conn: Connection) -> None:
    """A worker's life: :func:`run` on ``conn`` until the server closes it or the work is done."""
    try:
        run(conn)
    except (EOFError, BrokenPipeError, ConnectionResetError):   # the server went away or gave back a spare worker
        pass
    finally:
        conn.close()
