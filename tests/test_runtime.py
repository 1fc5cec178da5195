"""The process settings that the CLI, the workers and the benchmarks share (aelab.runtime)."""
import os
import subprocess
import sys
import time

import pytest
import torch
from threadpoolctl import threadpool_info

from aelab import jobs, runtime


def test_configure_gives_every_pool_the_same_threads():
    before = torch.get_num_threads()
    try:
        settings = runtime.configure(1)
        assert settings["threads"] == torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        runtime.configure(before)
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_validation_reuses_its_memory_instead_of_faulting_fresh_pages():
    # A fresh process validates a conv autoencoder on 2,000 images, 3 times after a first pass. In batches of
    # 1,000 each batch's activations (50 MB) came from fresh mmap'd pages: 62,000 page faults a pass. In
    # batches of INFERENCE_BATCH with the tuned malloc they come back from the heap.
    script = """
import resource, torch, aelab
from aelab import runtime
assert runtime.tune_malloc()
cfg = aelab.preset("conv")
model = aelab.build_model(cfg.model, (1, 28, 28), 0)
x = torch.randint(0, 256, (2000, 1, 28, 28), dtype=torch.uint8)
trainer = aelab.Trainer(cfg.train)
assert trainer.eval_batch_size == runtime.INFERENCE_BATCH
trainer.evaluate(model, x)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    trainer.evaluate(model, x)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert float(out.stdout.strip()) < 3000   # 392 measured; one 12.8 MB activation would be 3,125


def test_tasks_get_the_cores_jobs_leave_free_and_jobs_leave_one_to_the_server(monkeypatch):
    monkeypatch.delenv("AELAB_JOB_THREADS", raising=False)
    cores = os.cpu_count()
    assert jobs.job_threads("task") == cores
    assert jobs.job_threads("task", busy=cores - 1) == 1 and jobs.job_threads("task", busy=cores + 3) == 1
    assert jobs.job_threads("train") == max(1, cores - 1)
    monkeypatch.setenv("AELAB_JOB_THREADS", "3")
    assert jobs.job_threads("study") == 3 and jobs.job_threads("task") == cores


def test_a_running_job_holds_its_threads_until_it_ends(tmp_path, monkeypatch):
    import aelab

    monkeypatch.delenv("AELAB_JOB_THREADS", raising=False)
    sent = []
    send = jobs.Worker.send_work
    monkeypatch.setattr(jobs.Worker, "send_work", lambda self, kind, work, threads: (
        sent.append((kind, threads)), send(self, kind, work, threads)))
    registry = jobs.Registry(max_jobs=1, warm=0)
    try:
        cfg = aelab.preset("stacked", "digits")
        cfg.train.epochs = 200
        job = registry.start(cfg, tmp_path)
        deadline = time.time() + 120
        while job.snapshot().status != "running" and time.time() < deadline:
            time.sleep(0.1)
        assert jobs.busy_threads() == jobs.job_threads("train")
        assert jobs.job_threads("task", busy=jobs.busy_threads()) == max(1, os.cpu_count() - jobs.job_threads("train"))
        job.stop()
        assert job.join(120)
        deadline = time.time() + 30   # released once the worker process is gone, just after the outcome
        while jobs.busy_threads() and time.time() < deadline:
            time.sleep(0.1)
        assert jobs.busy_threads() == 0
    finally:
        registry.close()
    assert sent == [("train", jobs.job_threads("train"))]


def test_avx512_hosts_get_atens_avx2_kernels_unless_told_otherwise(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert runtime.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512f", "avx512bw"}
    assert runtime.cpu_flags(tmp_path / "missing") == set()
    env = {}
    assert runtime.choose_kernels(env, {"avx2", "avx512f"}) == "avx2" and env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert "aten_avx2" in env["TORCHINDUCTOR_CACHE_DIR"]   # compiled kernels kept apart from AVX-512 ones
    env = {"ATEN_CPU_CAPABILITY": "avx512"}   # the user's choice stays
    assert runtime.choose_kernels(env, {"avx2", "avx512f"}) is None and env == {"ATEN_CPU_CAPABILITY": "avx512"}
    env = {}
    assert runtime.choose_kernels(env, {"avx2"}) is None and env == {}   # AVX2 hosts: torch's own choice


@pytest.mark.skipif("avx512f" not in runtime.cpu_flags(), reason="an AVX-512 host")
def test_importing_aelab_first_gives_a_fresh_process_the_avx2_kernels():
    script = "import aelab, torch; print(torch.backends.cpu.get_cpu_capability(), aelab.runtime.configure()['kernels'])"
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.split() == ["AVX2", "AVX2"]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**env, "ATEN_CPU_CAPABILITY": "avx512"},
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.split() == ["AVX512", "AVX512"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_memory_goes_back_to_the_kernel():
    """release_freed_memory (between the stages of a run's evaluation) gives back what the tuned thresholds keep:
    64 MB freed in small blocks stay resident until it runs. In a fresh process (the settings are process-wide)."""
    script = """
from aelab import runtime
def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("RssAnon:")).split()[1]) / 1024
assert runtime.tune_malloc() and runtime.fewer_malloc_arenas()
blocks = [bytearray(64 << 10) for _ in range(1024)]   # 64 MB in blocks below the mmap threshold: the heap
kept = blocks[-1]
del blocks
before = rss_mb()
assert runtime.release_freed_memory()
print(before - rss_mb())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert float(out.stdout) > 40, out.stdout
