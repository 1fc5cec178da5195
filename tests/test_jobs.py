import re
import time

import pytest

import aelab
from aelab.config import AutoencoderConfig
from aelab.jobs import JobRefused, Registry


def small(epochs=2):
    cfg = aelab.preset("stacked", "digits")
    cfg.model = AutoencoderConfig(hidden=(16,), latent=4)
    cfg.train.epochs = epochs
    return cfg


def test_job_trains_in_the_background_and_saves_a_run(tmp_path):
    job = Registry(max_jobs=1).start(small(), tmp_path, owner="me")
    assert job.join(120)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.run_name and (tmp_path / snap.run_name / "config.json").exists()
    assert len(snap.history["val_loss"]) == 2 and snap.trace and snap.first_point_seconds > 0
    assert snap.preview.shape == snap.preview_input.shape == (8, 8, 8)


def test_past_the_limit_jobs_queue_in_order_and_can_be_cancelled(tmp_path):
    with pytest.raises(JobRefused, match="caps training at 5 epochs"):
        Registry(max_jobs=1, max_epochs=5).start(small(epochs=6), tmp_path)
    reg = Registry(max_jobs=1)
    try:
        first = reg.start(small(epochs=500), tmp_path, owner="a")
        second, third = reg.start(small(), tmp_path, owner="b"), reg.start(small(), tmp_path, owner="c")
        assert [second.snapshot().status, second.snapshot().position] == ["queued", 1]
        assert third.snapshot().position == 2
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


def test_tasks_are_shared_per_key_and_failures_retried():
    from aelab import jobs

    calls = []

    def slow(x):
        calls.append(x)
        time.sleep(0.2)
        return x * 2

    a = jobs.task(("double", 21), slow, 21)
    b = jobs.task(("double", 21), slow, 21)
    assert a is b and not a.done
    assert a.join(5) and a.result == 42 and calls == [21]

    def broken():
        raise ValueError("perplexity too large")

    failed = jobs.task(("broken",), broken)
    assert failed.join(5) and "perplexity too large" in failed.error
    assert jobs.task(("broken",), broken) is not failed   # a failed task is tried again


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
        assert job.join(120)
        snap = job.snapshot()
        assert snap.status == "failed" and "ran out of memory" in snap.error and "AELAB_MAX_WORKER_MB" in snap.error
    finally:
        reg.close()
