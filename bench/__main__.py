"""AE Lab benchmarks: `make bench` or `python -m bench [--quick] [--only seed,presets,...]`.

Runs every comparison below in one go and writes bench/RESULTS.md:
  seed       the book's `stacked` recipe: aelab vs Keras (TensorFlow CPU) vs a plain PyTorch loop, interleaved
  presets    seconds per epoch of every autoencoder preset, aelab next to the same recipe in Keras, from 1-epoch
             runs that take turns every tenth of an epoch, timed in those blocks (their validation losses at the
             book's epoch counts: `python -m bench.fidelity`)
  gans       ms per training step of the `gan` and `dcgan` presets against the book's GAN loop in Keras, over a fixed
             number of steps (their samples' quality over 3 seeds: `python -m bench.gan`, about an hour)
  batches    images/s of stacked, conv and vae at batch 32/128/512, beside a FLOP-bound estimate
  latent     PCA, t-SNE and UMAP time for 2,000 / 5,000 / 10,000 codes
  app        cold start, Start -> first live point, peak server RSS while training and projecting
  gpu        seconds per epoch on a GPU (only when one is present)
Keras lives in its own virtual environment (bench/.venv-keras), installed here on first use.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import aelab
from aelab import runtime
from aelab.data import to_float
from aelab.optim import make_optimizer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KERAS_VENV = HERE / ".venv-keras"
KERAS_REQUIREMENT = "tensorflow-cpu==2.21.*"
SECTIONS = ("seed", "presets", "gans", "book3d", "batches", "latent", "app", "gpu")


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- Keras
def keras_python() -> Path:
    """The Keras virtual environment's python, created and filled on first use."""
    python = KERAS_VENV / "bin" / "python"
    if not python.exists() or subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True).returncode:
        log(f"installing {KERAS_REQUIREMENT} into {KERAS_VENV} (once)...")
        subprocess.run([sys.executable, "-m", "venv", str(KERAS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", KERAS_REQUIREMENT], check=True)
    return python


class KerasServer:
    """One Keras process that runs preset after preset (``keras_ref.py --serve``): TensorFlow is imported and the
    data read once, not for each preset (6-8 s each here)."""

    def __init__(self):
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen([str(keras_python()), str(HERE / "keras_ref.py"), "--serve"], text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self.tensorflow = self._answer()["tensorflow"]
        self._pending: dict = {}   # a started run's last answer: a handoff, or its result

    def run(self, preset: str, epochs: int | None = None, batch_ends: bool = False) -> dict:
        """The preset's run (``epochs`` None: the book's), as ``keras_ref.run`` returns it."""
        self._send(json.dumps({"preset": preset, "epochs": epochs, "batch_ends": batch_ends}))
        return self._answer()

    def start(self, preset: str, epochs: int | None, every: int) -> None:
        """Start the preset's run (with its batch-end times) so that it pauses after every ``every`` training
        batches (``keras_ref.Handoff``); returns once it has trained its first block. :meth:`resume` lets it train
        the next, :meth:`finish` to its end."""
        self._send(json.dumps({"preset": preset, "epochs": epochs, "batch_ends": True, "handoff": every}))
        self._pending = self._answer()

    def resume(self) -> None:
        """Let the started run train its next block; returns when it pauses again or ends (at once if it ended)."""
        if "handoff" in self._pending:
            self._send("go")
            self._pending = self._answer()

    def finish(self) -> dict:
        """Let the started run train to its end; its result."""
        while "handoff" in self._pending:
            self.resume()
        result, self._pending = self._pending, {}
        return result

    def _send(self, line: str) -> None:
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def _answer(self) -> dict:
        while line := self._proc.stdout.readline():
            if line.startswith("{"):
                return json.loads(line)
        self._stderr.seek(0)
        raise RuntimeError(f"the Keras process ended (exit {self._proc.wait()}): {self._stderr.read()[-3000:]}")

    def close(self) -> None:
        if "handoff" in self._pending:   # a run left paused (AE Lab's side failed): no use training it on
            self._proc.kill()
        self._proc.stdin.close()
        self._proc.wait(timeout=60)
        self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------------------------- torch
class BatchClock(aelab.Callback):
    """The perf_counter time at the end of every training batch: per fit (a greedy run's phases are fits of
    their own, as in Keras), per epoch, like ``keras_ref.EpochTimer.batch_ends``."""

    def __init__(self):
        self.fits: list[list[list[float]]] = []
        self._model = None

    def on_batch_end(self, state) -> None:
        if state.batch == 1:
            if state.model is not self._model:
                self._model = state.model
                self.fits.append([])
            self.fits[-1].append([])
        self.fits[-1][-1].append(time.perf_counter())


class Handoff(aelab.Callback):
    """Every ``every`` training batches (counted over all the fits of a run, as ``keras_ref.Handoff`` counts),
    lets the Keras run started on ``keras`` train its next block: the two tools alternate in blocks about a second
    long. Put it after the :class:`BatchClock`, whose batch end is then taken before the wait."""

    def __init__(self, keras: KerasServer, every: int):
        self.keras, self.every, self.batches = keras, every, 0

    def on_batch_end(self, state) -> None:
        self.batches += 1
        if self.batches % self.every == 0:
            self.keras.resume()


def autoencoder_presets(only: list[str] | None = None) -> list[str]:
    """The presets with a Keras twin in keras_ref.py (every autoencoder; not the GANs, not the classifier), in
    their order, or those of them in ``only``."""
    return [name for name, (_, model, _) in aelab.PRESETS.items() if model.family == "autoencoder"
            and (only is None or name in only)]


def aelab_run(preset: str, epochs: int | None = None, batch_ends: bool = False, callbacks=()) -> dict:
    """One run of ``preset`` on Fashion-MNIST for ``epochs`` (None: the preset's; a greedy preset's: per phase,
    and as many to fine-tune): its seconds and validation losses per epoch, and with ``batch_ends`` the time at
    the end of each training batch (see :class:`BatchClock`) and each epoch's validation seconds. ``callbacks``
    run after the clock."""
    cfg = aelab.preset(preset, "fashion-mnist")
    cfg.train.epochs = epochs or cfg.train.epochs
    if cfg.train.greedy:
        cfg.train.finetune_epochs = cfg.train.epochs
    ds = aelab.load_dataset("fashion-mnist")
    model = aelab.build_model(cfg.model, ds.image_shape, cfg.train.seed)
    clock = BatchClock()
    trainer = aelab.Trainer(cfg.train, callbacks=[*([clock] if batch_ends else []), *callbacks])
    h = trainer.fit(model, ds.split(0.1)).history
    timed = {"batch_ends": clock.fits, "validation_seconds": [s - t for s, t in zip(h["seconds"], h["train_seconds"])]}
    return {"seconds": h["seconds"], "val_loss": h["val_loss"], **(timed if batch_ends else {})}


def plain_run(epochs: int) -> dict:
    """The stacked model in a hand-written PyTorch loop (same data, init and optimiser)."""
    import torch.nn.functional as F

    cfg = aelab.preset("stacked")
    ds = aelab.load_dataset("fashion-mnist")
    split = ds.split(0.1)
    model = aelab.build_model(cfg.model, ds.image_shape, 42)
    opt = torch.optim.SGD(model.parameters(), lr=1.5)
    gen, seconds = torch.Generator().manual_seed(42), []
    for _ in range(epochs):
        started = time.perf_counter()
        x_epoch = split.x_train[torch.randperm(len(split.x_train), generator=gen)]
        for i in range(0, len(x_epoch), 32):
            xb = to_float(x_epoch[i:i + 32])
            loss = F.binary_cross_entropy_with_logits(model.decode(model.encode(xb)), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            xv = to_float(split.x_val)
            val = F.binary_cross_entropy_with_logits(model.decode(model.encode(xv)), xv).item()
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds, "val_loss": [val]}


def median(xs) -> float:
    return statistics.median(xs)


def spread(xs, digits: int = 2) -> str:
    """'median (min-max)' of repeated measurements."""
    return f"{statistics.median(xs):.{digits}f} ({min(xs):.{digits}f}-{max(xs):.{digits}f})"


def block_estimates(run: dict, every: int) -> dict[int, float]:
    """Seconds per epoch, one estimate per block of ``every`` training batches, counted over ``run``'s fits as the
    handoffs count them (block j: batches j * every + 1 to (j + 1) * every; ``batch_ends``: per fit, per epoch).
    An estimate is the epoch's steps at the block's pace, from the end of its first batch to the end of its last
    (the first holds the wait for the other tool, or the epoch's start), plus the epoch's validation
    (``validation_seconds``). Keyed by block number. Left out: a block that spans two epochs, and the first block
    of each fit (a fresh model's first steps, Keras's tracing)."""
    if every < 2:
        raise ValueError(f"a block of {every} batch has no pace")
    epochs = [(fit, epoch) for fit, per_epoch in enumerate(run["batch_ends"]) for epoch in range(len(per_epoch))]
    validation = dict(zip(epochs, run["validation_seconds"], strict=True))
    ends = [(fit, epoch, t) for fit, epoch in epochs for t in run["batch_ends"][fit][epoch]]
    out, fits_begun = {}, set()
    for j in range(len(ends) // every):
        block = ends[j * every:(j + 1) * every]
        if {where[:2] for where in block} != {block[0][:2]}:
            continue
        fit, epoch, _ = block[0]
        if fit not in fits_begun:
            fits_begun.add(fit)
            continue
        pace = (block[-1][2] - block[0][2]) / (every - 1)
        out[j] = pace * len(run["batch_ends"][fit][epoch]) + validation[fit, epoch]
    return out


def paired_run(keras: KerasServer, preset: str, epochs: int, every: int) -> dict:
    """``preset`` in Keras and in AE Lab, taking turns every ``every`` training batches (Keras first): {"keras":
    its run, "aelab": ours}, both with batch-end times."""
    keras.start(preset, epochs, every)
    ours = aelab_run(preset, epochs, batch_ends=True, callbacks=[Handoff(keras, every)])
    return {"keras": keras.finish(), "aelab": ours}


def paired_blocks(run: dict, every: int) -> list[tuple[float, float]]:
    """(Keras's, AE Lab's) seconds per epoch from each block that both of a :func:`paired_run` kept, in order: the
    two blocks of a pair ran one after the other."""
    theirs, ours = block_estimates(run["keras"], every), block_estimates(run["aelab"], every)
    return [(theirs[j], ours[j]) for j in sorted(theirs.keys() & ours.keys())]


def host_speed() -> dict:
    """How fast this machine is right now, from two fixed workloads that AE Lab's code cannot change: a pure
    Python loop (one core, no torch) and a 1024x1024 float32 matmul on one torch thread. A row whose host speed
    differs from another's was measured on a slower or faster machine, not with slower code."""
    def rate(work, seconds=0.5) -> float:
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            work()
            n += 1
        return n / (time.perf_counter() - started)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    a = torch.randn(1024, 1024)
    gflops = rate(lambda: a @ a) * 2 * 1024 ** 3 / 1e9
    torch.set_num_threads(threads)
    return {"python_mops": rate(lambda: sum(range(10_000))) * 10_000 / 1e6, "matmul_gflops_1t": gflops}


def stolen(call, *args, **kwargs):
    """(``call(*args, **kwargs)``, the share of this VM's CPU time that the hypervisor gave to other guests
    meanwhile, in %): /proc/stat's steal time over all CPUs (0 where the kernel does not report it)."""
    def steal() -> int:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()   # cpu user nice system idle ... steal
        except OSError:   # not Linux
            return 0
        return int(fields[8]) if fields[:1] == ["cpu"] and len(fields) > 8 else 0

    before, started = steal(), time.perf_counter()
    result = call(*args, **kwargs)
    jiffies = (time.perf_counter() - started) * (os.cpu_count() or 1) * os.sysconf("SC_CLK_TCK")
    return result, 100 * (steal() - before) / jiffies


def cpu_model() -> str:
    """'AMD EPYC (family 25 model 1, AVX2)': the hosts of this VM differ in kind from day to day."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(line.split(":", 1) for line in info.splitlines()[:30] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = runtime.cpu_flags()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{fields.get('model name', platform.processor())} (family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}, {isa})")


# ---------------------------------------------------------------------------------------- sections
def seed_section(keras: KerasServer, cycles: int, epochs: int) -> tuple[list[str], dict]:
    runs = {"keras": [], "aelab": [], "plain": []}
    steal = {k: [] for k in runs}
    for c in range(cycles):   # interleaved: every tool runs once per cycle
        log(f"seed recipe, cycle {c + 1}/{cycles}")
        for tool, call in (("keras", lambda: keras.run("stacked", epochs)),
                           ("aelab", lambda: aelab_run("stacked", epochs)), ("plain", lambda: plain_run(epochs))):
            result, share = stolen(call)
            runs[tool].append(result)
            steal[tool].append(share)
    # Keras's first epoch includes tracing the graph; compare steady-state epochs for everyone
    epochs_s = {k: [s for r in v for s in r["seconds"][1:]] for k, v in runs.items()}
    per = {k: median(v) for k, v in epochs_s.items()}
    val = {k: v[0]["val_loss"][-1] for k, v in runs.items()}
    lines = [f"`stacked` (batch 32, SGD 1.5, BCE, split 0.1), {epochs} epochs x {cycles} interleaved cycles; "
             "seconds per epoch over epochs 2..N of every cycle: median (min-max). CPU stolen: the share of the VM's "
             "CPU time that the hypervisor gave to other guests during each tool's runs (/proc/stat), per cycle.", "",
             "| | s / epoch | aelab speed-up | val BCE after the last epoch | CPU stolen |", "|---|---|---|---|---|"]
    for k, label in (("aelab", "AE Lab"), ("keras", "Keras (TensorFlow CPU)"), ("plain", "plain PyTorch loop")):
        lines.append(f"| {label} | {spread(epochs_s[k], 3)} | {per[k] / per['aelab']:.2f}x | {val[k]:.4f} | "
                     + " / ".join(f"{x:.1f}" for x in steal[k]) + " % |")
    return lines, {"s_per_epoch": per, "val_loss": val, "stolen_pct": steal}


def book3d_section(keras: KerasServer) -> tuple[list[str], dict]:
    """The book's 3-D demo (PCA with a linear autoencoder), Keras and AE Lab on the same 60 points."""
    from aelab import dimred

    k = keras.run("linear-3d")
    ours = dimred.book_3d_demo()
    lines = ["The notebook's 60 centred 3-D points (`generate_3d_data(60)` after `np.random.seed(4)`), a 3 -> 2 -> 3 "
             "linear autoencoder, MSE, SGD 1.5, 20 epochs of batches of 32; MSE over the 60 points after training, "
             "and the largest principal angle between the decoder's plane and PCA's.", "",
             "| | MSE after 20 epochs | PCA's MSE (the best plane) | largest angle to PCA's plane |",
             "|---|---|---|---|",
             f"| AE Lab | {ours.ae_mse:.5f} | {ours.pca_mse:.5f} | {ours.max_angle_deg:.2f}° |",
             f"| Keras | {k['final_mse']:.5f} | {ours.pca_mse:.5f} | {k['max_angle_deg']:.2f}° |"]
    return lines, {"aelab": {"mse": ours.ae_mse, "angle": ours.max_angle_deg, "loss": ours.loss}, "keras": k}


# The presets' speed: every preset trains SPEED_EPOCHS epochs (a greedy preset: per phase, and as many to fine-tune)
# in each of SPEED_CYCLES cycles, Keras and AE Lab taking turns every 1/STEP_BLOCKS of an epoch (at least 5 pairs
# per figure from 1 epoch, where a whole epoch of `recurrent` or `conv` takes 35-80 s). Those two run one cycle
# (9 pairs): their second cycles took 3.1 of `make bench`'s 30.9 minutes at a slow hour. Their validation losses
# after the book's epoch counts need full runs (25 minutes here): python -m bench.fidelity.
SPEED_EPOCHS, SPEED_CYCLES, STEP_BLOCKS = 1, 2, 10
ONE_CYCLE = ("recurrent", "conv")


def steps_per_epoch(preset: str) -> int:
    """Training batches in one epoch of ``preset`` on Fashion-MNIST (the last one partial), as both tools run it."""
    images = len(aelab.load_dataset("fashion-mnist").split(0.1).x_train)
    return -(-images // aelab.preset(preset, "fashion-mnist").train.batch_size)


def presets_section(keras: KerasServer, only: list[str] | None = None) -> tuple[list[str], dict]:
    lines = [f"Every autoencoder preset, {SPEED_EPOCHS} epoch ({SPEED_EPOCHS} per phase and as many to fine-tune "
             f"for `stacked-greedy`) in each of {SPEED_CYCLES} cycles ({', '.join(f'`{n}`' for n in ONE_CYCLE)}: "
             "1, their epochs are long), Keras and AE Lab taking turns every "
             f"1/{STEP_BLOCKS} of an epoch: Keras trains a block of batches and waits while AE Lab trains as many, "
             "and so on (one Keras process for the whole section, so TensorFlow starts once). This machine's speed "
             "drifts by up to 2x over minutes; the two blocks of a pair run within about a second of each other, "
             "so a drift reaches both. s / epoch: an epoch's time estimated from each block as all its steps at "
             "that block's pace (its first step, after the other tool's turn, left out) plus the epoch's "
             "validation (measured); median (min-max) over the blocks of both cycles, the first block of each run "
             "(its warm-up) left out. Speed-up: Keras's estimate over AE Lab's in each pair of blocks, median "
             f"(min-max). Validation loss after {SPEED_EPOCHS} epoch; after the book's epoch counts: \"Validation "
             "losses at the book's epoch counts\" (`python -m bench.fidelity`). Host speed: a pure Python loop just "
             "before the preset's cycles (millions of additions per second; see \"Steady numbers\"). CPU stolen: "
             "the largest share of the VM's CPU time that the hypervisor gave to other guests during one cycle "
             "(/proc/stat).", "",
             "| preset | AE Lab s / epoch | Keras s / epoch | speed-up | validation s, AE Lab / Keras "
             "| AE Lab val loss | Keras val loss | host speed | CPU stolen |",
             "|---|---|---|---|---|---|---|---|---|"]
    data = {}
    for name in autoencoder_presets(only):
        log(f"preset {name}")
        host, every = host_speed(), steps_per_epoch(name) // STEP_BLOCKS
        runs, pairs, steal = [], [], []
        for _ in range(1 if name in ONE_CYCLE else SPEED_CYCLES):
            run, share = stolen(paired_run, keras, name, SPEED_EPOCHS, every)
            runs.append(run)
            pairs += paired_blocks(run, every)
            steal.append(share)
        estimates = {"keras": [k for k, _ in pairs], "aelab": [a for _, a in pairs]}
        speed_up = [k / a for k, a in pairs]
        validation = {tool: [x for r in runs for x in r[tool]["validation_seconds"]] for tool in estimates}
        val = {tool: runs[-1][tool]["val_loss"][-1] for tool in estimates}
        # (not the runs' whole epochs: each holds the other tool's turns)
        data[name] = {"s_per_epoch": estimates, "speed_up": speed_up, "validation_seconds": validation,
                      "val_loss": val, "handoff_every": every, "host": host, "stolen_pct": steal}
        lines.append(f"| `{name}` | {spread(estimates['aelab'])} | {spread(estimates['keras'])} | "
                     f"{median(speed_up):.2f}x ({min(speed_up):.2f}-{max(speed_up):.2f}) | "
                     f"{median(validation['aelab']):.2f} / {median(validation['keras']):.2f} | "
                     f"{val['aelab']:.4f} | {val['keras']:.4f} | {host['python_mops']:.0f} | "
                     f"{max(steal):.1f} % |")
    return lines, data


# GANs timed over a fixed number of steps: (epochs, steps per epoch); the first epoch (Keras traces its graphs) is
# left out, so each figure is the median of 5 epochs. Their quality needs full runs: bench.gan.
GAN_STEPS = {"gan": (6, 300), "dcgan": (6, 60)}


def gans_section() -> tuple[list[str], dict]:
    from bench.gan import aelab_gan, keras_gan

    lines = ["The book's `train_gan` loop in Keras (`bench/keras_ref.py`: the discriminator on 32 fakes + 32 reals, "
             "then the generator through the frozen discriminator) and AE Lab's `gan` and `dcgan` presets, back to "
             "back, on the first (steps x 32) Fashion-MNIST training images; ms per step (one discriminator and one "
             "generator update): median (min-max) over epochs 2..N. Their samples' quality against the book's, over "
             "3 seeds of full runs, is in \"The book's GAN against the `gan` preset\" (`python -m bench.gan`).", "",
             "| preset | epochs x steps | AE Lab ms / step | Keras ms / step | speed-up | host speed | CPU stolen |",
             "|---|---|---|---|---|---|---|"]
    data = {}
    for name, (epochs, steps) in GAN_STEPS.items():
        log(f"gan speed: {name}")
        host = host_speed()
        k, k_stolen = stolen(keras_gan, name, 0, epochs, None, images=steps * 32)
        ours, stolen_ours = stolen(aelab_gan, name, 0, epochs, images=steps * 32, samples=False)
        tk, ta = ([s * 1e3 for s in r["step_seconds"][1:]] for r in (k, ours))
        data[name] = {"aelab_ms": ta, "keras_ms": tk, "host": host, "stolen_pct": [k_stolen, stolen_ours]}
        lines.append(f"| `{name}` | {epochs} x {steps} | {spread(ta)} | {spread(tk)} | {median(tk) / median(ta):.2f}x "
                     f"| {host['python_mops']:.0f} | {k_stolen:.1f} / {stolen_ours:.1f} % |")
    return lines, data


def peak_gflops() -> float:
    """Measured float32 matmul throughput of this machine (all torch threads)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    started, n = time.perf_counter(), 10
    for _ in range(n):
        a @ b
    return n * 2 * 2048 ** 3 / (time.perf_counter() - started) / 1e9


def batches_section() -> tuple[list[str], dict]:
    from torch.utils.flop_counter import FlopCounterMode

    ds = aelab.load_dataset("fashion-mnist")
    gflops = peak_gflops()
    lines = [f"Training throughput (forward + backward + optimiser step), images per second. The FLOP-bound "
             f"limit divides this machine's measured matmul throughput ({gflops:.0f} GFLOP/s, 2048x2048 float32) "
             "by each model's FLOPs per image; small batches are far from it because per-step overhead dominates.",
             "", "| preset | batch 32 | batch 128 | batch 512 | FLOP-bound limit |", "|---|---|---|---|---|"]
    data = {}
    for name in ("stacked", "conv", "vae"):
        cfg = aelab.preset(name)
        model = aelab.build_model(cfg.model, ds.image_shape)
        opt = make_optimizer(model.parameters(), cfg.train)
        row = {}
        for bs in (32, 128, 512):
            x = to_float(ds.x_train[:bs])
            for _ in range(3):
                out = model(x)
                opt.zero_grad()
                out.loss.backward()
                opt.step()
            steps, started = 0, time.perf_counter()
            while time.perf_counter() - started < 3.0:
                out = model(x)
                opt.zero_grad()
                out.loss.backward()
                opt.step()
                steps += 1
            row[bs] = steps * bs / (time.perf_counter() - started)
        with FlopCounterMode(display=False) as counter:
            model(to_float(ds.x_train[:32])).loss.backward()
        flops_per_image = counter.get_total_flops() / 32
        limit = gflops * 1e9 / flops_per_image
        data[name] = {"images_per_s": row, "flops_per_image": flops_per_image, "limit": limit}
        lines.append(f"| `{name}` | {row[32]:,.0f} | {row[128]:,.0f} | {row[512]:,.0f} | {limit:,.0f} |")
    return lines, data


def latent_section() -> tuple[list[str], dict]:
    from aelab import latent

    run = aelab.RunStore(ROOT / "examples", read_only=True).open("stacked-fashion")
    ds = aelab.load_dataset("fashion-mnist")
    codes = latent.encode_images(run.load_model(), ds.x_test)
    started = time.perf_counter()
    latent.project(codes[:500], "umap")   # the first UMAP of a process: imports, numba cache (or compilation)
    umap_first = time.perf_counter() - started
    latent.project(codes[:500], "pca")   # warm up: imports and thread pools are not what we time
    latent.project(codes[:500], "tsne", max_iter=250)
    lines = ["Codes of the shipped `stacked-fashion` example (30-D), test images. t-SNE as the app runs it "
             "(scikit-learn Barnes-Hut, perplexity 30, 750 iterations, PCA init); UMAP as the app runs it "
             "(umap-learn, 15 neighbours from scikit-learn's exact search, min_dist 0.1, one thread for a "
             "reproducible map).", "",
             "| codes | PCA (s) | t-SNE (s) | UMAP (s) |", "|---|---|---|---|"]
    data = {"umap_first_500_s": umap_first}
    for n in (2000, 5000, 10000):
        times = {}
        for method in ("pca", "tsne", "umap"):
            started = time.perf_counter()
            latent.project(codes[:n], method)
            times[method] = time.perf_counter() - started
        data[n] = times
        lines.append(f"| {n:,} | {times['pca']:.2f} | {times['tsne']:.1f} | {times['umap']:.1f} |")
        log(f"latent {n}: " + " ".join(f"{m} {t:.2f}s" for m, t in times.items()))
    lines += ["", f"A process's first UMAP (500 codes) took {umap_first:.1f} s: importing umap-learn and loading "
              "its numba functions from numba's cache (compiled once per machine, about 50 s)."]
    return lines, data


def app_section() -> tuple[list[str], dict]:
    from bench.app import measure

    m = measure()
    lines = ["A real server on a free port, started as `make run` starts it (`python -m pages.shared.serve run`: "
             "torch imported, then the workers' fork server forked from the server), driven by Debian's Chromium "
             "(Playwright) on the same machine; RSS sampled every 0.1 s from /proc (the anonymous PSS, a read of "
             "smaps_rollup that costs tens of ms of CPU, once a second while training and not during the "
             "t-SNE).", "",
             "| measure | value |", "|---|---|",
             f"| cold start: the server started to a rendered Home page | {m['cold_start_s']:.2f} s |",
             f"| Start (stacked, Fashion-MNIST) to the first point on the live chart, the server's first visitor | "
             f"{m['first_point_s']:.2f} s |",
             f"| ... a second visitor's Start, once the server is warm | {m['first_point_warm_s']:.2f} s |",
             f"| ... the same two from opening the Train page (drawn, then Start clicked at once) | "
             f"{m['open_to_first_point_s']:.2f} s, {m['open_to_first_point_warm_s']:.2f} s |",
             f"| server RSS after start, before any page (torch and the workers' imports included) | "
             f"{m['rss_idle_mb']:.0f} MiB |",
             f"| peak server RSS while training `stacked` on Fashion-MNIST | {m['rss_train_mb']:.0f} MiB |",
             f"| ... of which anonymous memory (RssAnon: heap, stacks; not mapped library files) | "
             f"{m['rss_anon_train_mb']:.0f} MiB |",
             "| peak anonymous memory of the server and its workers together while training `stacked`, a page "
             f"shared by forked workers counted once (PSS) | {m['pss_anon_train_total_mb']:.0f} MiB |",
             "| ... the same summed over the processes' RssAnon (a shared page counted in each) | "
             f"{m['rss_anon_train_total_mb']:.0f} MiB |",
             "| ... each other process's peak, anonymous / all RSS (the workers' fork server, the training job's "
             "worker, the warm spare, multiprocessing's resource tracker) | "
             + ", ".join(f"{a:.0f} / {r:.0f} MiB" for a, r in m["rss_train_workers_mb"]) + " |",
             f"| peak server RSS while projecting 10,000 codes with t-SNE | {m['rss_tsne_mb']:.0f} MiB |",
             f"| ... of which anonymous memory | {m['rss_anon_tsne_mb']:.0f} MiB |",
             "| t-SNE of 10,000 codes in the app (a new visitor's page, the newest run): the projection task | "
             f"{m['tsne_10k_task_s']:.1f} s |",
             "| ... the same task (load, encode, t-SNE) as a library call in the bench process right after, server "
             f"and browser idle | {m['tsne_10k_library_s']:.1f} s "
             f"({m['tsne_10k_task_s'] / m['tsne_10k_library_s']:.2f}x in the app) |",
             f"| t-SNE of 10,000 codes in the app: link opened to plot drawn (software WebGL) | "
             f"{m['tsne_10k_s']:.1f} s |"]
    return lines, m


def gpu_section() -> tuple[list[str], dict]:
    if not torch.cuda.is_available():
        return ["Not measured: no GPU on this machine."], {}
    lines = [f"{torch.cuda.get_device_name()}, data resident on the device.", "",
             "| preset | s / epoch | val loss |", "|---|---|---|"]
    data = {}
    for name in ("conv", "vae"):
        cfg = aelab.preset(name)
        cfg.train.device = "cuda"
        ds = aelab.load_dataset("fashion-mnist")
        model = aelab.build_model(cfg.model, ds.image_shape)
        fit = aelab.Trainer(cfg.train).fit(model, ds.split(0.1))
        data[name] = fit.history
        lines.append(f"| `{name}` | {fit.seconds_per_epoch:.2f} | {fit.history['val_loss'][-1]:.4f} |")
    return lines, data


def environment() -> list[str]:
    host = host_speed()
    return [f"- date: {dt.datetime.now().isoformat(timespec='minutes')}",
            f"- machine: {cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, {platform.system()}; "
            f"host speed at the start: Python {host['python_mops']:.0f} M additions/s, matmul "
            f"{host['matmul_gflops_1t']:.0f} GFLOP/s on one thread",
            f"- python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads, "
            f"ATen's {torch.backends.cpu.get_cpu_capability()} kernels), "
            f"Keras reference: {KERAS_REQUIREMENT} in its own venv",
            "- timings on shared machines are noisy: compare the ratios measured in this one run"]


def previous_sections(path: Path, titles) -> tuple[list[str], dict[str, list[str]]]:
    """What a run keeps of an existing RESULTS.md: the sections other benchmarks wrote (bench.hostile,
    bench.load), below this run's; and for each title this run writes, the "### " subsections that later work
    added under that section (records of their own, never written by this module), below the new section."""
    if not path.exists():
        return [], {}
    others, subsections = [], {}
    for section in path.read_text().split("\n## ")[1:]:
        title = next((t for t in titles if section.startswith(t)), None)
        if title is None:
            others.append(f"## {section.rstrip()}\n")
        elif "\n### " in section:
            subsections[title] = ["### " + section.split("\n### ", 1)[1].rstrip(), ""]
    return others, subsections


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--quick", action="store_true", help="fewer epochs and cycles (a smoke run)")
    parser.add_argument("--presets", help="the presets section for these presets only, comma-separated")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    runtime.configure()   # the settings the CLI and the app's workers use
    titles = {"seed": "Seed recipe speed", "presets": "All presets", "gans": "The GANs' speed against Keras",
              "batches": "Larger batches",
              "latent": "Latent projection", "app": "The app", "gpu": "GPU",
              "book3d": "The book's 3-D demo: PCA with a linear autoencoder"}
    doc = ["# AE Lab benchmark results", "", "Made by `make bench` (`python -m bench`) in one run.", "",
           *environment(), ""]
    duration_at = len(doc) - 1   # the run's duration joins the environment's lines once it is known
    kept, subsections = previous_sections(Path(args.out), titles.values())
    results, started = {}, time.perf_counter()
    with contextlib.ExitStack() as stack:
        # one Keras process for every section that runs the book's recipes: TensorFlow starts once (6-8 s)
        keras = functools.cache(lambda: stack.enter_context(KerasServer()))
        run_section = {"seed": lambda: seed_section(keras(), cycles=1 if args.quick else 2,
                                                    epochs=3 if args.quick else 10),
                       "presets": lambda: presets_section(keras(), args.presets.split(",") if args.presets else None),
                       "book3d": lambda: book3d_section(keras())}
        for name in args.only.split(","):
            log(f"== {name} (at {(time.perf_counter() - started) / 60:.1f} minutes)")
            lines, data = (run_section[name] if name in run_section else globals()[f"{name}_section"])()
            results[name] = data
            doc += [f"## {titles[name]}", "", *lines, "", *subsections.get(titles[name], [])]
            Path(args.out).write_text("\n".join(doc + kept))   # keep what is done if a later section fails
    minutes = (time.perf_counter() - started) / 60
    doc.insert(duration_at, f"- this run took {minutes:.1f} minutes ({args.only})")
    Path(args.out).write_text("\n".join(doc + kept))
    Path(args.out).with_name("results.json").write_text(json.dumps(results, indent=1, default=str))
    print("\n".join(doc))


if __name__ == "__main__":
    main()
