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


def test_limits_refuse_with_a_reason(tmp_path):
    with pytest.raises(JobRefused, match="caps training at 5 epochs"):
        Registry(max_jobs=1, max_epochs=5).start(small(epochs=6), tmp_path)
    reg = Registry(max_jobs=1)
    first = reg.start(small(epochs=200), tmp_path)
    try:
        with pytest.raises(JobRefused, match="limit is 1"):
            reg.start(small(), tmp_path)
    finally:
        first.stop()
        assert first.join(60)
    assert first.snapshot().status == "stopped"
    assert reg.start(small(), tmp_path).join(60)   # the slot is free again


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
    """Four visitors press Start at the same moment, 200 times: never more than the limit get a job (the
    count includes jobs registered whose thread has not started yet)."""
    import threading

    from aelab import jobs

    monkeypatch.setattr(jobs.Job, "_work", lambda self: (time.sleep(0.01), self._finished.set()))
    cfg = small()
    for _ in range(200):
        reg, started = Registry(max_jobs=1), []
        gate = threading.Barrier(4)

        def press():
            gate.wait()
            try:
                started.append(reg.start(cfg, tmp_path))
            except JobRefused:
                pass

        presses = [threading.Thread(target=press) for _ in range(4)]
        for p in presses:
            p.start()
        for p in presses:
            p.join()
        assert len(started) == 1
        assert started[0].join(5)


def test_a_job_past_its_time_limit_stops_and_saves_what_it_has(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_MAX_JOB_MINUTES", str(1.5 / 60))
    job = Registry(max_jobs=1).start(small(epochs=500), tmp_path)
    assert job.join(120)
    snap = job.snapshot()
    assert snap.status == "timeout" and snap.done and snap.run_name, snap.error
    run = aelab.RunStore(tmp_path).open(snap.run_name)
    assert run.meta["status"] == "timeout" and 0 < run.epochs_done < 500
