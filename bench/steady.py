"""Why the same training step takes 1x or 2x the time on this machine: `python -m bench.steady [--json]`.

Each measurement trains a preset with aelab's Trainer in a fresh process on the first N batches of
Fashion-MNIST, validating after each epoch as a run does: 6 epochs, the first a warm-up, so ms per training step
is median (min-max) over 5 repetitions; page faults per step count the validation's too.
The cases separate the suspects one at a time:

  host       a pure Python loop and a one-thread matmul, 10 times over a few seconds: the machine's own drift
  malloc     glibc's default thresholds against aelab.runtime.tune_malloc, and validation batches of 1,000
             against aelab.runtime.INFERENCE_BATCH (page faults per step)
  threads    1 or 2 torch threads, alone and beside a competing busy process (a second program on one core)
  wait       OpenMP's wait policy (OMP_WAIT_POLICY active / passive) beside the competing process
  denormals  torch.set_flush_denormal(True) against the default
  kernels    ATen's AVX-512 elementwise kernels against its AVX2 ones (ATEN_CPU_CAPABILITY), on an AVX-512 host;
             `--ops` times the elementwise operations themselves under each
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

from aelab.runtime import INFERENCE_BATCH

from .__main__ import host_speed, spread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(preset: str, steps: int, tuned: bool, threads: int, flush_denormal: bool, eval_batch: int) -> dict:
    """Train ``preset`` with the Trainer for 6 epochs of ``steps`` batches (the first a warm-up), validating on
    the 6,000 validation images after each, as a run does; ms per training step and page faults per step."""
    import torch

    import aelab
    from aelab import runtime
    from aelab.train import Callback

    if tuned:
        runtime.tune_malloc()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush_denormal)
    cfg = aelab.preset(preset)
    cfg.train.epochs = 6
    ds = aelab.load_dataset("fashion-mnist")
    split = ds.split(0.1)
    n = cfg.train.batch_size * steps
    split.x_train, split.y_train = split.x_train[:n], split.y_train[:n]

    class Meter(Callback):
        def __init__(self):
            self.ms, self.faults, self.last = [], [], 0

        def on_epoch_end(self, state):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            self.ms.append(state.history["train_seconds"][-1] / state.batches * 1e3)
            self.faults.append((faults - self.last) / state.batches)
            self.last = faults

    meter = Meter()
    model = aelab.build_model(cfg.model, ds.image_shape, 42)
    aelab.Trainer(cfg.train, callbacks=[meter], eval_batch_size=eval_batch).fit(model, split)
    return {"ms": meter.ms[1:], "faults_per_step": statistics.median(meter.faults[1:]),
            "kernels": torch.backends.cpu.get_cpu_capability()}


OPS_SHAPE = (32, 16, 28, 28)   # `conv`'s first activation at batch 32


def ops_child(repeat: int = 5) -> dict:
    """Microseconds per call (median of ``repeat`` rounds of 100 calls each) of the elementwise operations the
    presets run, on ``OPS_SHAPE`` floats, under the kernels this process got."""
    import time

    import torch
    import torch.nn.functional as F

    import aelab  # noqa: F401  (its kernel choice, unless ATEN_CPU_CAPABILITY is set)
    from aelab import runtime

    runtime.configure()
    x = torch.randn(OPS_SHAPE, generator=torch.Generator().manual_seed(0))
    xg, grad = x.clone().requires_grad_(), torch.ones(OPS_SHAPE)
    ops = {"selu": lambda: F.selu(x), "selu forward + backward": lambda: F.selu(xg).backward(grad),
           "expm1": lambda: torch.expm1(x), "exp": lambda: torch.exp(x), "tanh": lambda: torch.tanh(x),
           "sigmoid": lambda: torch.sigmoid(x), "log_sigmoid": lambda: F.logsigmoid(x), "relu": lambda: F.relu(x)}
    rounds = {name: [] for name in ops}
    for _ in range(repeat + 1):   # round by round, so that a slow moment of the host is shared by every operation
        for name, op in ops.items():
            started = time.perf_counter()
            for _ in range(100):
                op()
            rounds[name].append((time.perf_counter() - started) * 1e4)
    return {"us": {name: statistics.median(us[1:]) for name, us in rounds.items()},   # the first round warms up
            "kernels": torch.backends.cpu.get_cpu_capability()}


def ops(kernels: str) -> dict:
    """:func:`ops_child` in a fresh process with ``ATEN_CPU_CAPABILITY=kernels``."""
    out = subprocess.run([sys.executable, "-m", "bench.steady", "--ops-child"], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={**os.environ, "ATEN_CPU_CAPABILITY": kernels})
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(preset: str, steps: int, *, tuned=True, threads=2, flush_denormal=False, env=None,
            competitor=False, eval_batch=INFERENCE_BATCH) -> dict:
    """One fresh child process; with ``competitor``, a busy Python loop runs beside it on the same machine."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if competitor else None
    try:
        out = subprocess.run([sys.executable, "-m", "bench.steady", "--child", preset, "--steps", str(steps),
                              "--threads", str(threads), "--eval-batch", str(eval_batch),
                              *(["--tuned"] if tuned else []), *(["--flush-denormal"] if flush_denormal else [])],
                             capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, **(env or {})})
    finally:
        if busy:
            busy.kill()
            busy.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def host(rounds: int = 10) -> dict:
    rows = [host_speed() for _ in range(rounds)]
    return {k: [r[k] for r in rows] for k in rows[0]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--ops-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ops", action="store_true", help="time the elementwise operations under each kernel set "
                        "(AVX-512, AVX2) instead of training")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--eval-batch", type=int, default=INFERENCE_BATCH, help=argparse.SUPPRESS)
    parser.add_argument("--flush-denormal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--presets", default="conv,stacked")
    parser.add_argument("--cases", help="only the cases whose label contains one of these, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per malloc case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.tuned, args.threads, args.flush_denormal, args.eval_batch)))
        return
    if args.ops_child:
        print(json.dumps(ops_child()))
        return
    if args.ops:
        runs = [ops(kernels) for kernels in ("avx512", "avx2", "avx512", "avx2")]   # interleaved, twice each
        if args.json:
            print(json.dumps(runs))
            return
        print("| operation on 32x16x28x28 floats | " + " | ".join(r["kernels"] for r in runs) + " |\n|---|"
              + "---|" * len(runs))
        for name in runs[0]["us"]:
            print(f"| `{name}` | " + " | ".join(f"{r['us'][name]:.0f} µs" for r in runs) + " |")
        return
    result = {"host": host(), "cases": []}
    for preset in args.presets.split(","):
        steps = args.steps if preset == "conv" else args.steps * 3
        cases = [*[("before: malloc default, validation batches of 1,000", dict(tuned=False, eval_batch=1000)),
                   ("malloc tuned, validation batches of 1,000", dict(eval_batch=1000)),
                   ("malloc default, validation batches of 256", dict(tuned=False)),
                   ("after: malloc tuned, validation batches of 256", dict())] * args.repeat,
                 ("1 thread", dict(threads=1)), ("2 threads", dict(threads=2)),
                 ("1 thread + busy process", dict(threads=1, competitor=True)),
                 ("2 threads + busy process", dict(threads=2, competitor=True)),
                 ("2 threads, OMP_WAIT_POLICY=passive", dict(env={"OMP_WAIT_POLICY": "PASSIVE"})),
                 ("2 threads + busy, OMP_WAIT_POLICY=passive", dict(competitor=True,
                                                                     env={"OMP_WAIT_POLICY": "PASSIVE"})),
                 ("2 threads + busy, OMP_WAIT_POLICY=active", dict(competitor=True, env={"OMP_WAIT_POLICY": "ACTIVE"})),
                 ("2 threads, GOMP_SPINCOUNT=10000", dict(env={"GOMP_SPINCOUNT": "10000"})),
                 ("2 threads + busy, GOMP_SPINCOUNT=10000", dict(competitor=True, env={"GOMP_SPINCOUNT": "10000"})),
                 ("flush denormals", dict(flush_denormal=True)), ("denormals kept (the default)", dict()),
                 *[(f"kernels: ATen's {label}", dict(env={"ATEN_CPU_CAPABILITY": value}))
                   for label, value in (("AVX-512 (ATEN_CPU_CAPABILITY=avx512)", "avx512"),
                                        ("AVX2 (aelab's choice on an AVX-512 host)", "avx2"))] * args.repeat]
        wanted = args.cases.split(",") if args.cases else None
        for label, kwargs in [c for c in cases if wanted is None or any(w in c[0] for w in wanted)]:
            m = measure(preset, steps, **kwargs)
            result["cases"].append({"preset": preset, "case": label, **m})
            print(f"{preset:8s} {label:44s} ms/step {spread(m['ms'])}  faults/step {m['faults_per_step']:.0f} "
                  f"kernels {m['kernels']}",
                  file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(result))
        return
    h = result["host"]
    print(f"host: Python loop {spread(h['python_mops'])} M additions/s, "
          f"one-thread matmul {spread(h['matmul_gflops_1t'])} GFLOP/s (median (min-max) of 10)\n")
    print("| preset | case | ms / step: median (min-max) | page faults / step |\n|---|---|---|---|")
    for c in result["cases"]:
        print(f"| `{c['preset']}` | {c['case']} | {spread(c['ms'])} | {c['faults_per_step']:.0f} |")


if __name__ == "__main__":
    main()
