import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aelab
from aelab.config import AutoencoderConfig
from aelab.jobs import JobRefused, Registry

ROOT = Path(__file__).resolve().parents[1]


def small(epochs=2):
    cfg = aelab.preset("stacked", "digits")
    cfg.model = AutoencoderConfig(hidden=(16,), latent=4)
    cfg.train.epochs = epochs
    return cfg


def test_job_trains_in_the_background_and_saves_a_run(tmp_path):
    job = Registry(max_jobs=1).start(small(), tmp_path, owner="me")
    assert job.wait_for_first_point(120) and job.snapshot().trace   # what the page waits for after Start
    assert job.join(120)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.run_name and (tmp_path / snap.run_name / "config.json").exists()
    assert len(snap.history["val_loss"]) == 2 and snap.trace and snap.first_point_seconds > 0
    assert snap.preview.shape == snap.preview_input.shape == (8, 8, 8)


def test_the_live_charts_show_a_lone_first_point():
    from aelab import figures

    one, two = [(0.01, 0.5)], [(0.01, 0.5), (0.02, 0.4)]
    for chart in (lambda t: figures.loss_figure({}, t), lambda t: figures.gan_figure({}, {"d_loss": t, "g_loss": t}),
                  lambda t: figures.beta_figure({}, {"beta": t, "kl": t})):
        assert [d.mode for d in chart(one).data] == ["markers"] * len(chart(one).data) != []   # a line needs two
        assert [d.mode for d in chart(two).data] == ["lines"] * len(chart(two).data)
    empty = figures.loss_figure({}, [], reference=0.2874, epochs=10)   # the Train page's chart before Start
    assert empty.layout.yaxis.range == (0, 0.5748) and empty.layout.xaxis.range == (0, 10.1)
    assert figures.loss_figure({}, one).layout.yaxis.range is None   # data: plotly's own range


def test_a_pinned_device_overrides_the_one_asked_for(tmp_path, monkeypatch):
    cfg = small(epochs=1)
    cfg.train.device = "cuda"   # this machine has none: without the pin the job fails
    monkeypatch.setenv("AELAB_DEVICE", "cpu")
    job = Registry(max_jobs=1, warm=0).start(cfg, tmp_path)
    assert job.join(120)
    snap = job.snapshot()
    assert snap.status == "finished", snap.error
    run = aelab.RunStore(tmp_path).open(snap.run_name)
    assert run.config.train.device == "cpu" and run.meta["device"] == "cpu"
    monkeypatch.setenv("AELAB_DEVICE", "tpu")
    with pytest.raises(aelab.ConfigError, match="AELAB_DEVICE"):
        Registry(max_jobs=1, warm=0).start(small(epochs=1), tmp_path)


def test_past_the_limit_jobs_queue_in_order_and_can_be_cancelled(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_MAX_EPOCHS", "5")
    with pytest.raises(aelab.errors.SettingLimitError, match="is 6 epochs; the limit is 5 epochs") as refused:
        Registry(max_jobs=1).start(small(epochs=6), tmp_path)
    assert refused.value.code == "epochs" and refused.value.setting == "AELAB_MAX_EPOCHS"
    monkeypatch.delenv("AELAB_MAX_EPOCHS")
    reg = Registry(max_jobs=1)
    try:
        first = reg.start(small(epochs=500), tmp_path, owner="a")
        second, third = reg.start(small(), tmp_path, owner="b"), reg.start(small(), tmp_path, owner="c")
        assert [second.snapshot().status, second.snapshot().position] == ["queued", 1]
        assert third.snapshot().position == 2
        waited = time.monotonic()
        assert not second.wait_for_first_point(30) and time.monotonic() - waited < 1   # queued: no wait
        reg.cancel(second)
        assert second.join(1) and second.snapshot().status == "cancelled" and third.snapshot().position == 1
        _wait_running(first)
        reg.cancel(first)   # a running job stops after the current batch and keeps its run
        assert first.join(60) and first.snapshot().status == "stopped" and first.snapshot().run_name
        assert third.join(120) and third.snapshot().status == "finished"   # next in line, once a slot was free
    finally:
        reg.close()


def _wait_running(job, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while job.snapshot().batch == 0 and time.time() < deadline:
        time.sleep(0.1)
    assert job.snapshot().status == "running"


def test_each_visitor_has_a_cap(tmp_path, monkeypatch):
    from aelab import jobs

    monkeypatch.setattr(jobs.Job, "_launch", lambda self, pool: None)   # nothing trains: only the counting
    reg = Registry(max_jobs=1, max_per_visitor=2, warm=0)
    reg.start(small(), tmp_path, owner="v")
    reg.start(small(), tmp_path, owner="v")
    with pytest.raises(JobRefused, match="limit per visitor is 2"):
        reg.start(small(), tmp_path, owner="v")
    reg.start(small(), tmp_path, owner="w")   # another visitor still gets in line


def test_failure_is_a_message_not_a_traceback(tmp_path):
    cfg = small()
    cfg.model = AutoencoderConfig(hidden=(16,), latent=4, activation="linear")
    cfg.train.lr = 1e30
    job = Registry().start(cfg, tmp_path)
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == "failed" and "smaller learning rate" in snap.error


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small autoencoder run on digits (297 test images), trained in this process."""
    return aelab.train(small(), runs_dir=tmp_path_factory.mktemp("runs")).run


def test_tasks_run_in_workers_are_shared_and_failures_retried(trained):
    reg = Registry(max_tasks=1)
    try:
        a = reg.task("projection", trained, 200, "pca", 2, owner="s1")
        b = reg.task("projection", trained, 200, "pca", 2, owner="s2")
        assert a is b and a.holders == {("s1", "projection"), ("s2", "projection")}
        assert a.join(120) and a.status == "finished", a.error
        projection, codes = a.result
        assert projection.coords.shape == (200, 2) and codes.shape == (200, 4) and a.elapsed > 0
        assert reg.task("projection", trained, 200, "pca", 2) is a   # a finished result is reused

        failed = reg.task("timelapse", trained, "umap")
        assert failed.join(120) and failed.status == "failed" and "unknown time-lapse projection" in failed.error
        assert failed.pid == a.pid   # a worker that finished a task serves the next one
        assert reg.task("timelapse", trained, "umap") is not failed   # a failed task is tried again
        with pytest.raises(ValueError, match="unknown task"):
            reg.task("os.system", "true")
    finally:
        reg.close()


def test_tasks_queue_and_superseded_or_released_ones_are_cancelled(trained):
    reg = Registry(max_tasks=1)
    try:
        first = reg.task("projection", trained, 297, "tsne", 2, owner="s1", slot="map")
        queued = reg.task("projection", trained, 297, "pca", 3, owner="s2", slot="map")
        assert first.status == "running" and (queued.status, queued.position) == ("queued", 1)
        # s2 changes a setting: the task it waited for (nobody else does) leaves the queue
        newer = reg.task("projection", trained, 297, "pca", 2, owner="s2", slot="map")
        assert queued.join(1) and queued.status == "cancelled" and newer.position == 1
        shared = reg.task("timelapse", trained, "pca", owner="s2")
        reg.task("timelapse", trained, "pca", owner="s3")
        # s1 closes its tab: its running t-SNE is cancelled (its worker killed), the queue moves on
        reg.release("s1")
        assert first.join(30) and first.status == "cancelled" and first.result is None
        assert newer.join(120) and newer.status == "finished", newer.error
        reg.release("s2")   # s3 still waits for the time-lapse: it goes on
        assert shared.join(120) and shared.status == "finished" and shared.result.shape == (3, 150, 2)   # 150 validation codes, 3 frames
        assert reg.task_owners() == {"s3"}
    finally:
        reg.close()


def test_the_server_cancels_the_tasks_of_closed_sessions(trained, monkeypatch):
    """The watch the server starts: a session the runtime no longer knows has its tasks cancelled."""
    import threading

    from streamlit.runtime import Runtime

    from aelab import jobs
    from pages.shared import server

    class FakeRuntime:
        def is_active_session(self, session_id):
            return session_id == "open-tab"

    reg = Registry(max_tasks=1)
    monkeypatch.setattr(jobs, "_registry", reg)
    monkeypatch.setattr(server, "CLOSED_GRACE_S", 0.2)
    monkeypatch.setattr(Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(Runtime, "instance", staticmethod(FakeRuntime))
    stop = threading.Event()
    try:
        gone = reg.task("projection", trained, 297, "tsne", 2, owner="closed-tab")
        kept = reg.task("projection", trained, 297, "tsne", 3, owner="open-tab")
        server.release_closed_sessions(every_s=0.05, stop=stop)
        assert gone.join(30) and gone.status == "cancelled"
        assert kept.join(120) and kept.status == "finished" and reg.task_owners() == {"open-tab"}
    finally:
        stop.set()
        reg.close()


def test_a_task_past_the_time_limit_or_killed_fails_with_a_reason(trained, monkeypatch):
    reg = Registry(max_tasks=2)
    try:
        monkeypatch.setenv("AELAB_MAX_JOB_MINUTES", "0.001")   # 60 ms: less than loading the model and data
        slow = reg.task("projection", trained, 297, "tsne", 2)
        assert slow.join(60) and slow.status == "failed" and "longer than 0.001 minutes" in slow.error
        monkeypatch.delenv("AELAB_MAX_JOB_MINUTES")
        killed = reg.task("projection", trained, 297, "tsne", 3)
        deadline = time.time() + 60
        while killed._worker is None or not killed._worker.ready.is_set():
            assert time.time() < deadline
            time.sleep(0.05)
        os.kill(killed._worker.process.pid, signal.SIGKILL)
        assert killed.join(30) and killed.status == "failed" and "killed by SIGKILL" in killed.error
        assert reg.task("probes", trained).join(120)   # the server goes on
    finally:
        reg.close()


def test_the_limit_holds_when_starts_race(tmp_path, monkeypatch):
    """Four visitors press Start at the same moment, 200 times: exactly the limit's worth start, the others
    queue (a job counts from the moment it is registered)."""
    import threading

    from aelab import jobs

    launched = []
    monkeypatch.setattr(jobs.Job, "_launch", lambda self, pool: launched.append(self))   # no worker: the counting
    cfg = small()
    for _ in range(200):
        reg, launched[:] = Registry(max_jobs=1, warm=0), []
        gate = threading.Barrier(4)
        presses = [threading.Thread(target=lambda: (gate.wait(), reg.start(cfg, tmp_path))) for _ in range(4)]
        for p in presses:
            p.start()
        for p in presses:
            p.join()
        assert len(launched) == 1
        assert sorted(reg.get(j).snapshot().position or 0 for j in reg._jobs) == [0, 1, 2, 3]


def test_a_job_past_its_time_limit_stops_and_saves_what_it_has(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_MAX_JOB_MINUTES", str(5 / 60))   # the worker loads the data first
    job = Registry(max_jobs=1).start(small(epochs=500), tmp_path)
    assert job.join(120)
    snap = job.snapshot()
    assert snap.status == "timeout" and snap.done and snap.run_name, snap.error
    run = aelab.RunStore(tmp_path).open(snap.run_name)
    assert run.meta["status"] == "timeout" and 0 < run.epochs_done < 500


def test_a_killed_worker_fails_the_job_not_the_server(tmp_path):
    import signal

    reg = Registry(max_jobs=1)
    try:
        job = reg.start(small(epochs=500), tmp_path)
        _wait_running(job)
        job._worker.process.send_signal(signal.SIGKILL)   # as the kernel's OOM killer would
        assert job.join(30)
        snap = job.snapshot()
        assert snap.status == "failed" and re.search(r"killed by SIGKILL \(most likely out of memory\) at epoch \d+", snap.error)
        assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]   # no half run
        assert reg.start(small(), tmp_path).join(120)   # the server goes on: the next job runs
    finally:
        reg.close()


def test_a_job_past_its_memory_cap_fails_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_MAX_WORKER_MB", "40")
    cfg = small()
    cfg.model = AutoencoderConfig(hidden=(4000, 4000), latent=8)   # ~65 MB of weights alone
    reg = Registry(max_jobs=1)
    try:
        job = reg.start(cfg, tmp_path)
        assert job.wait_for_first_point(120)   # no point ever comes: the end ends the page's wait
        snap = job.snapshot()
        assert snap.status == "failed" and "ran out of memory" in snap.error and "AELAB_MAX_WORKER_MB" in snap.error
        assert not snap.trace and job.join(30)
    finally:
        reg.close()


def test_open_tasks_are_bounded_and_old_results_forgotten(trained, monkeypatch):
    from aelab import jobs

    monkeypatch.setattr(jobs.Task, "_launch", lambda self, pool: None)   # nothing runs: only the bookkeeping
    monkeypatch.setattr(jobs, "MAX_OPEN_TASKS", 3)
    monkeypatch.setattr(jobs, "KEPT_TASKS", 2)
    reg = Registry(max_tasks=1, warm=0)
    first = [reg.task("projection", trained, n, "pca", 2) for n in (10, 20, 30)]
    assert [t.position for t in first] == [None, 1, 2]   # one slot: the first runs, two wait
    with pytest.raises(JobRefused, match="3 computations waiting"):
        reg.task("projection", trained, 40, "pca", 2)
    for i, t in enumerate(first):   # each end starts the next in line
        t._end({"status": "finished", "result": i})
    reg.task("projection", trained, 40, "pca", 2)   # a new task forgets all but the 2 newest results
    assert reg.task("projection", trained, 30, "pca", 2) is first[2]
    assert reg.task("projection", trained, 10, "pca", 2) is not first[0]


def test_a_worker_serves_a_bounded_number_of_tasks(monkeypatch):
    from aelab import jobs

    class FakeWorker:
        tasks_done, killed = 0, False
        process = type("P", (), {"poll": staticmethod(lambda: None)})

        def kill(self):
            self.killed = True

    monkeypatch.setattr(jobs, "TASKS_PER_WORKER", 2)
    pool = jobs.WorkerPool(warm=0)
    worker = FakeWorker()
    pool.give_back(worker)
    assert pool.take(for_task=True) is worker and not worker.killed
    pool.give_back(worker)   # its second task: retired, a fresh worker takes over
    assert worker.killed and pool._task_idle == collections.deque()


def test_the_server_freezes_the_imported_objects_out_of_the_collector():
    import gc

    from pages.shared import server

    server.freeze_imported_objects()
    try:
        assert gc.get_freeze_count() > 100_000   # torch, plotly, pandas: Streamlit's per-run gc skips them
    finally:
        gc.unfreeze()


def test_workers_are_forked_from_one_server_and_share_its_imports():
    from aelab.jobs import Worker

    def status(pid, key):
        return next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith(key + ":"))

    def pss_anon(pid):
        return next(int(line.split()[1]) for line in open(f"/proc/{pid}/smaps_rollup") if line.startswith("Pss_Anon:"))

    workers = [Worker(), Worker()]
    try:
        assert all(w.wait_ready(120) for w in workers)
        (server,) = {status(w.process.pid, "PPid") for w in workers}   # one parent, not this process
        assert server != os.getpid() and "aelab.worker_server" in open(f"/proc/{server}/cmdline").read()
        for w in workers:   # torch and scikit-learn's pages: the fork server's, each counted in all three processes
            assert status(w.process.pid, "RssAnon") > 300_000 and pss_anon(w.process.pid) < status(w.process.pid, "RssAnon") / 2
    finally:
        for w in workers:
            w.kill()
    assert [w.process.returncode for w in workers] == [-signal.SIGKILL] * 2


FORK_HERE = """
import os, signal, sys
from aelab import jobs
from multiprocessing import forkserver, resource_tracker

def status(pid, key):
    return next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith(key + ":"))

def pss_anon(pid):
    return next(int(line.split()[1]) for line in open(f"/proc/{pid}/smaps_rollup") if line.startswith("Pss_Anon:"))

if set(vars(forkserver._forkserver)) != jobs._FORK_SERVER_FIELDS:   # a Python this does not know: nothing forked
    assert not jobs.fork_server_here() and forkserver._forkserver._forkserver_pid is None
    print("fallback")
    sys.exit()
assert jobs.fork_server_here() and not jobs.fork_server_here()   # once
fork_server, tracker = forkserver._forkserver._forkserver_pid, resource_tracker._resource_tracker._pid
me = open("/proc/self/cmdline").read()
for pid in (fork_server, tracker):   # forked from here, not new interpreters
    assert status(pid, "PPid") == os.getpid() and open(f"/proc/{pid}/cmdline").read() == me
worker = jobs.Worker()
assert worker.wait_ready(60) and status(worker.process.pid, "PPid") == fork_server
# torch and scikit-learn imported once, here: this process, the fork server and the worker share the pages
for pid in (os.getpid(), fork_server, worker.process.pid, tracker):
    assert status(pid, "RssAnon") > 300_000 and pss_anon(pid) < status(pid, "RssAnon") / 2, pid
assert worker.conn.send(("stop", {})) is None and worker.process.wait(30) == 0   # a worker told to end, ends
worker.kill()

os.kill(fork_server, signal.SIGKILL)   # gone: the next worker comes from a fork server started the usual way
while "zombie" not in open(f"/proc/{fork_server}/status").read():
    pass
worker = jobs.Worker()
assert worker.wait_ready(120)
again = status(worker.process.pid, "PPid")
assert again != fork_server and "aelab.worker_server" in open(f"/proc/{again}/cmdline").read()
worker.kill()
print("ok")
"""


def test_the_server_can_fork_the_fork_server_and_share_its_imports_with_every_worker():
    """`python -m pages.shared.serve` calls aelab.jobs.fork_server_here before Streamlit starts: one copy of
    torch's memory for the server, the fork server and the workers (in a process of its own: it forks it)."""
    out = subprocess.run([sys.executable, "-c", FORK_HERE], cwd=ROOT, capture_output=True, text=True, timeout=240)
    if out.returncode == 0 and out.stdout.strip() == "fallback":
        pytest.skip("this Python's fork server is not the one fork_server_here knows: it forks nothing")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr[-3000:]


def test_a_worker_that_cannot_be_forked_fails_its_job_with_a_reason(tmp_path, monkeypatch):
    import multiprocessing.context

    from aelab.jobs import Worker

    def refuse(self):
        raise OSError("no fork server")

    monkeypatch.setattr(multiprocessing.context.ForkServerProcess, "start", refuse)
    worker = Worker()
    assert not worker.wait_ready(30) and worker.process.returncode == 1
    worker.kill()   # returns: nothing to kill
    job = Registry(max_jobs=1, warm=0).start(small(), tmp_path)
    assert job.join(30) and job.snapshot().status == "failed" and "did not start" in job.snapshot().error
