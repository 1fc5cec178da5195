"""The GANs against the book's Keras code: `python -m bench.gan [--presets gan,dcgan] [--seeds 0,1,2] [--json]`.

For each preset and seed, Keras then AE Lab back to back (this machine's speed drifts): the book's training loop
(`bench/keras_ref.py`: the discriminator on 32 fakes + 32 reals, then the generator through the frozen
discriminator) and `aelab.Trainer` on the preset, both for the preset's epoch count (`--epochs` to change it) on
the same 54,000 Fashion-MNIST training images. Seconds per training step (one discriminator and one generator
update) are the median over the epochs; quality is scored on 5,000 samples of each with the same domain FID and
classes-covered measure as AE Lab's runs (`aelab.quality.score_images`, the shipped `classifier-fashion`).

`python -m bench.gan --lockstep 300 [--seeds 0]` runs the two in lockstep instead: Keras records the simple GAN's
first steps (its initial weights, every step's codes, batch and losses: `keras_ref.gan_lockstep`) and AE Lab's `gan`
preset replays them from the same weights (:func:`replay_gan`); it prints both tools' losses and the first step
at which they part, against AE Lab replaying itself from weights one float32 step apart (how soon rounding alone
parts two runs of this GAN).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import aelab
from aelab import quality, runtime
from aelab.runs import RunStore, examples_dir

from .__main__ import host_speed, keras_python

HERE = Path(__file__).resolve().parent
N_SAMPLES = quality.DEFAULT_SAMPLES


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def keras_ref(*args: str) -> dict:
    """Run ``keras_ref.py args`` in the Keras venv and return its last line of output (JSON); a failure raises
    with the end of what it wrote to stderr (TensorFlow's traceback)."""
    done = subprocess.run([str(keras_python()), str(HERE / "keras_ref.py"), *args], capture_output=True, text=True)
    if done.returncode:
        what = f"keras_ref.py {' '.join(args)} exited with {done.returncode}"
        raise RuntimeError(f"{what}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def keras_gan(preset: str, seed: int, epochs: int, folder: Path | None, images: int | None = None) -> dict:
    """The book's loop in Keras; with ``folder``, its samples as ``images``; with ``images``, on the first that
    many training images only (a timing run)."""
    out = folder / f"keras-{preset}-{seed}.npy" if folder else None
    row = keras_ref("--presets", preset, "--seed", str(seed), "--epochs", str(epochs),
                    *(["--samples-out", str(out)] if out else []), *(["--images", str(images)] if images else []))
    if out:
        row["images"] = torch.from_numpy(np.load(out)).float().reshape(-1, 1, 28, 28).clamp(0, 1)
    return row


def aelab_gan(preset: str, seed: int, epochs: int, images: int | None = None, samples: bool = True) -> dict:
    """The preset trained by aelab's Trainer; with ``images``, on the first that many training images only."""
    cfg = aelab.preset(preset, "fashion-mnist")
    cfg.train.epochs, cfg.train.seed = epochs, seed
    ds = aelab.load_dataset("fashion-mnist")
    split = ds.split(0.1)
    split.x_train, split.y_train = split.x_train[:images], split.y_train[:images]
    model = aelab.build_model(cfg.model, ds.image_shape, seed)
    fit = aelab.Trainer(cfg.train).fit(model, split)
    steps = -(-len(split.x_train) // cfg.train.batch_size)
    row = {"seconds": fit.history["train_seconds"], "step_seconds": [s / steps for s in fit.history["train_seconds"]]}
    if samples:
        row["images"] = model.sample(N_SAMPLES, generator=torch.Generator().manual_seed(seed))
    return row


def replay_gan(record: dict[str, np.ndarray], nudge: bool = False) -> np.ndarray:
    """AE Lab's `gan` preset replaying a record of the book's loop (`keras_ref.gan_lockstep`): Keras's initial
    weights, then each step's recorded codes and batch through ``GAN.training_step``; with ``nudge``, every initial
    weight moved to the next float32 up. Returns the (d_loss, g_loss) of each step, shape (steps, 2)."""
    cfg = aelab.preset("gan", "fashion-mnist")
    model = aelab.build_model(cfg.model, (1, 28, 28), 0)
    dense = [m for net in (model.generator, model.discriminator) for m in net.modules()
             if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for j, layer in enumerate(dense):
            for param, saved in ((layer.weight, record[f"init{2 * j}"].T), (layer.bias, record[f"init{2 * j + 1}"])):
                if tuple(param.shape) != saved.shape:
                    raise ValueError(f"layer {j}: the record's weight is {saved.shape}, the preset's {param.shape}")
                param.copy_(torch.from_numpy(np.ascontiguousarray(saved)))
                if nudge:
                    param.copy_(torch.nextafter(param, torch.tensor(float("inf"))))
    optimizers = model.configure_optimizers(cfg.train)
    codes: list[torch.Tensor] = []
    model.noise = lambda n, device, generator=None: codes.pop(0)   # the recorded codes, in the order drawn
    model.train()
    losses = []
    for s in range(recorded_steps(record)):
        codes[:] = [torch.from_numpy(record[f"z1_{s}"]), torch.from_numpy(record[f"z2_{s}"])]
        out = model.training_step(torch.from_numpy(record[f"x_{s}"]).unsqueeze(1), None, optimizers)
        losses.append((out.terms["d_loss"].item(), out.terms["g_loss"].item()))
    return np.array(losses)


def recorded_steps(record: dict[str, np.ndarray]) -> int:
    """How many steps ``record`` holds (one ``loss_s`` each)."""
    return sum(key.startswith("loss_") for key in record)


def recorded_losses(record: dict[str, np.ndarray]) -> np.ndarray:
    """The recording tool's (d_loss, g_loss) of each step of ``record``, shape (steps, 2)."""
    return np.stack([record[f"loss_{s}"] for s in range(recorded_steps(record))])


def first_step_apart(a: np.ndarray, b: np.ndarray, tolerance: float = 1e-4) -> int | None:
    """The first step whose losses (rows of a and b) differ by more than ``tolerance`` (relative), or None."""
    apart = np.abs(a - b) > tolerance * np.maximum(1.0, np.abs(b))
    rows = np.flatnonzero(apart.any(axis=1))
    return int(rows[0]) if len(rows) else None


def lockstep(steps: int, seed: int) -> str:
    """Keras records ``steps`` steps of the book's GAN, AE Lab replays them: a markdown report."""
    with tempfile.TemporaryDirectory(prefix="aelab-bench-lockstep-") as folder:
        row = keras_ref("--lockstep", str(steps), "--lockstep-out", str(Path(folder) / "record.npz"),
                        "--seed", str(seed))
        with np.load(row["record"]) as saved:
            record = dict(saved)
    keras = recorded_losses(record)
    ours, nudged = replay_gan(record), replay_gan(record, nudge=True)
    lines = [f"seed {seed}, {steps} steps: AE Lab parts from Keras at step {first_step_apart(ours, keras)}; "
             f"AE Lab from itself nudged by one float32 step at step {first_step_apart(nudged, ours)} "
             "(None: never; losses apart by more than 1e-4, relative)", "",
             "| step | Keras d / g loss | AE Lab d / g loss | AE Lab nudged d / g loss |", "|---|---|---|---|"]
    for s in sorted({*range(0, steps, max(1, steps // 10)), steps - 1}):
        lines.append(f"| {s} | " + " | ".join(f"{r[s, 0]:.5f} / {r[s, 1]:.5f}" for r in (keras, ours, nudged)) + " |")
    return "\n".join(lines)


def mean_sd(xs) -> str:
    return f"{statistics.mean(xs):.1f} ± {statistics.stdev(xs):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="gan,dcgan")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, help="instead of each preset's own")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lockstep", type=int, metavar="STEPS",
                        help="replay STEPS steps of the book's simple GAN in AE Lab instead (see above)")
    args = parser.parse_args(argv)
    runtime.configure()
    if args.lockstep:
        for seed in map(int, args.seeds.split(",")):
            print(lockstep(args.lockstep, seed), "\n", flush=True)
        return
    dataset = aelab.load_dataset("fashion-mnist")
    classifier_run = RunStore(examples_dir(), read_only=True).open("classifier-fashion")
    classifier = classifier_run.load_model()
    result = {}
    with tempfile.TemporaryDirectory(prefix="aelab-bench-gan-") as folder:
        for preset in args.presets.split(","):
            epochs = args.epochs or aelab.preset(preset).train.epochs
            rows = []
            for seed in map(int, args.seeds.split(",")):
                host = host_speed()
                log(f"{preset} seed {seed}: Keras, {epochs} epochs")
                k = keras_gan(preset, seed, epochs, Path(folder))
                log(f"{preset} seed {seed}: AE Lab")
                ours = aelab_gan(preset, seed, epochs)
                row = {"seed": seed, "host": host}
                for name, r in (("keras", k), ("aelab", ours)):
                    report = quality.score_images(r.pop("images"), classifier, dataset, seed=0)
                    row[name] = {"ms_per_step": statistics.median(r["step_seconds"]) * 1e3,
                                 "s_per_epoch": statistics.median(r["seconds"]), "fid": report.fid,
                                 "classes_covered": report.classes_covered, "class_shares": report.class_shares,
                                 "reference_fid": report.reference_fid}
                log(f"  keras {row['keras']['ms_per_step']:.2f} ms/step FID {row['keras']['fid']:.1f} "
                    f"classes {row['keras']['classes_covered']}; aelab {row['aelab']['ms_per_step']:.2f} ms/step "
                    f"FID {row['aelab']['fid']:.1f} classes {row['aelab']['classes_covered']}")
                rows.append(row)
            result[preset] = {"epochs": epochs, "rows": rows}
    if args.json:
        print(json.dumps(result))
        return
    print("| preset | epochs | seeds | AE Lab ms / step | Keras ms / step | speed-up | AE Lab FID | Keras FID "
          "| AE Lab classes covered | Keras classes covered |\n|---|---|---|---|---|---|---|---|---|---|")
    for preset, r in result.items():
        get = {tool: {k: [row[tool][k] for row in r["rows"]] for k in ("ms_per_step", "fid", "classes_covered")}
               for tool in ("aelab", "keras")}
        a, k = get["aelab"], get["keras"]
        speedup = statistics.mean(k["ms_per_step"]) / statistics.mean(a["ms_per_step"])
        print(f"| `{preset}` | {r['epochs']} | {len(r['rows'])} | {mean_sd(a['ms_per_step'])} | "
              f"{mean_sd(k['ms_per_step'])} | {speedup:.2f}x"
              f" | {mean_sd(a['fid'])} | {mean_sd(k['fid'])} | {mean_sd(a['classes_covered'])} | "
              f"{mean_sd(k['classes_covered'])} |")


if __name__ == "__main__":
    main()
