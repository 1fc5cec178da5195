"""The job system on a Ray cluster (AELAB_JOB_BACKEND=ray) against a real local head (conftest.ray_head): jobs
run and stop as with local workers, a killed Ray worker fails its job only, and two app processes share one
runs directory and one job limit."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aelab
from aelab import jobs
from aelab.config import AutoencoderConfig

HERE = Path(__file__).resolve().parent


def small(epochs=2):
    cfg = aelab.preset("stacked", "digits")
    cfg.model = AutoencoderConfig(hidden=(16,), latent=4)
    cfg.train.epochs = epochs
    return cfg


@pytest.fixture
def ray_env(ray_head, monkeypatch):
    monkeypatch.setenv("AELAB_JOB_BACKEND", "ray")
    monkeypatch.setenv("AELAB_RAY_ADDRESS", ray_head)
    return ray_head


def wait_for(condition, timeout: float = 90, what: str = ""):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_jobs_run_and_one_is_stopped(ray_env, tmp_path):
    from aelab.ray_backend import RayRegistry

    reg = jobs.make_registry(max_jobs=2)
    assert isinstance(reg, RayRegistry)
    try:
        long, short = reg.start(small(epochs=300), tmp_path, owner="a", name="long"), \
            reg.start(small(epochs=2), tmp_path, owner="b", name="short")
        wait_for(lambda: long.snapshot().batch > 0, what="the long job's first batch")
        assert short.snapshot().position is None   # two slots: neither waits
        reg.cancel(long)   # Stop: after the current batch, and the run is saved
        assert long.join(60) and short.join(120)
        stopped, done = long.snapshot(), short.snapshot()
        assert stopped.status == "stopped" and done.status == "finished", (stopped.error, done.error)
        assert stopped.history["epoch"] and done.history["epoch"] == [1, 2] and done.frames
        store = aelab.RunStore(tmp_path)
        assert store.open("long").meta["status"] == "stopped" and store.open("short").meta["status"] == "finished"
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


def test_the_queue_the_cap_and_cancel_as_with_local_workers(ray_env, tmp_path):
    reg = jobs.make_registry(max_jobs=1, max_per_visitor=2)
    try:
        running = reg.start(small(epochs=300), tmp_path, owner="v", name="running")
        waiting = reg.start(small(), tmp_path, owner="v", name="waiting")
        with pytest.raises(jobs.JobRefused, match="limit per visitor is 2"):
            reg.start(small(), tmp_path, owner="v")
        wait_for(lambda: waiting.snapshot().position == 1, what="the place in line")
        reg.cancel(waiting)   # leaves the queue: never runs
        assert waiting.join(10) and waiting.snapshot().status == "cancelled"
        other = reg.start(small(), tmp_path, owner="w", name="other")   # another visitor: queued behind
        wait_for(lambda: other.snapshot().position == 1, what="the other visitor's place")
        reg.cancel(running)
        assert running.join(60) and other.join(120) and other.snapshot().status == "finished"
        assert sorted(r.name for r in aelab.RunStore(tmp_path).scan()[0]) == ["other", "running"]
    finally:
        reg.close()


def replica(runs_dir: Path, name: str, epochs: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "ray_replica.py"), str(runs_dir), name, str(epochs)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            cwd=HERE.parent)


def test_two_app_processes_share_the_runs_and_one_job_limit(ray_env, tmp_path):
    """Two replicas with AELAB_MAX_JOBS=1: the second's job waits in the cluster's queue (place 1) while the
    first's trains, and starts when it stops; both runs land in the one runs directory."""
    env = {**os.environ, "AELAB_MAX_JOBS": "1", "PYTHONPATH": str(HERE.parent)}
    first = replica(tmp_path, "first", 300, env)
    second = None
    try:
        line = {}
        while line.get("batch", 0) == 0:
            line = json.loads(first.stdout.readline())
            assert not line.get("error"), line
        second = replica(tmp_path, "second", 2, env)
        # a line every 0.2 s: queued from the start, its place known within ten seconds (later on a loaded
        # machine than on an idle one), then kept while the first trains
        waiting = [json.loads(second.stdout.readline())]
        while waiting[-1]["position"] != 1 and len(waiting) < 50:
            waiting.append(json.loads(second.stdout.readline()))
        waiting += [json.loads(second.stdout.readline()) for _ in range(5)]
        assert all(s["status"] == "queued" for s in waiting) and all(s["position"] == 1 for s in waiting[-6:]), waiting
        first.stdin.write("stop\n")
        first.stdin.flush()
        ends = {}
        for name, process in (("first", first), ("second", second)):
            lines = [json.loads(line) for line in process.stdout]
            ends[name] = lines[-1]
            assert process.wait(60) == 0
        assert ends["first"]["status"] == "stopped" and ends["second"]["status"] == "finished", ends
        assert sorted(r.name for r in aelab.RunStore(tmp_path).scan()[0]) == ["first", "second"]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
