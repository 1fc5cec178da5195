"""The job system on a Ray cluster (AELAB_JOB_BACKEND=ray) against a real local head (conftest.ray_head): jobs
run and stop as with local workers, and a killed Ray worker fails its job only. Two app replicas sharing one
runs directory and one job limit: tests/test_browser.py, through their pages."""
import os
import signal
import time

import pytest

import aelab
from aelab import jobs
from aelab.config import AutoencoderConfig


def small(epochs=2):
    cfg = aelab.preset("stacked", "digits")
    cfg.model = AutoencoderConfig(hidden=(16,), latent=4)
    cfg.train.epochs = epochs
    return cfg


def long():
    """A job that trains for minutes (batches of one image), until it is stopped."""
    cfg = small(epochs=300)
    cfg.train.batch_size = 1
    return cfg


@pytest.fixture
def ray_env(ray_head, monkeypatch):
    monkeypatch.setenv("AELAB_JOB_BACKEND", "ray")
    monkeypatch.setenv("AELAB_RAY_ADDRESS", ray_head)
    # Each job asks the cluster for AELAB_MAX_WORKER_MB of memory: at the local default (8,192) two jobs at once
    # may not fit the memory Ray gives the test head on a 24 GB machine, and the second would wait for the first
    monkeypatch.setenv("AELAB_MAX_WORKER_MB", "2048")
    return ray_head


def wait_for(condition, timeout: float = 90, what: str = ""):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_slots_a_queue_a_cap_and_stop_as_with_local_workers(ray_env, tmp_path):
    """Two jobs train at once in two slots; a third waits in line, a visitor's third is refused, a queued job
    cancelled never runs; Stop saves a run after the current batch, and its slot goes to the next in line."""
    from aelab.ray_backend import RayRegistry

    reg = jobs.make_registry(max_jobs=2, max_per_visitor=2)
    assert isinstance(reg, RayRegistry)
    try:
        first = reg.start(long(), tmp_path, owner="v", name="first")
        second = reg.start(long(), tmp_path, owner="w", name="second")
        waiting = reg.start(small(), tmp_path, owner="v", name="waiting")   # both slots taken
        with pytest.raises(jobs.JobRefused, match="limit per visitor is 2"):
            reg.start(small(), tmp_path, owner="v")
        wait_for(lambda: waiting.snapshot().position == 1, what="the place in line")
        assert first.snapshot().position is None and second.snapshot().position is None   # neither waits
        reg.cancel(waiting)   # leaves the queue: never runs
        assert waiting.join(10) and waiting.snapshot().status == "cancelled"
        other = reg.start(small(epochs=2), tmp_path, owner="w", name="other")   # queued behind the two
        wait_for(lambda: other.snapshot().position == 1, what="the other job's place")
        wait_for(lambda: first.snapshot().batch > 0 and second.snapshot().batch > 0, what="both jobs' first batch")
        reg.cancel(first)   # Stop: after the current batch, and the run is saved; its slot goes to `other`
        assert first.join(60) and other.join(120)
        done = other.snapshot()
        assert done.status == "finished" and done.history["epoch"] == [1, 2] and done.frames, done.error
        reg.cancel(second)
        assert second.join(60)
        stopped = first.snapshot()
        assert stopped.status == "stopped" and stopped.history["epoch"], stopped.error
        store = aelab.RunStore(tmp_path)
        assert sorted(r.name for r in store.scan()[0]) == ["first", "other", "second"]
        assert store.open("first").meta["status"] == "stopped" and store.open("other").meta["status"] == "finished"
    finally:
        reg.close()


def test_a_killed_ray_worker_fails_its_job_only(ray_env, tmp_path):
    reg = jobs.make_registry(max_jobs=1)
    try:
        job = reg.start(small(epochs=500), tmp_path, name="doomed")
        wait_for(lambda: job.snapshot().batch > 0, what="the first batch")
        os.kill(job._worker.process.pid, signal.SIGKILL)   # as the kernel's OOM killer would
        assert job.join(60)
        snap = job.snapshot()
        assert snap.status == "failed" and "worker on the Ray cluster died" in snap.error, snap.error
        assert "at epoch" in snap.error and "no run was saved" in snap.error
        assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]   # no half run
        task = reg.task("book_3d", 42)   # the server goes on
        assert task.join(120) and task.status == "finished", task.error
    finally:
        reg.close()
