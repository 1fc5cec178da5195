"""AE Lab on one GPU, in one short run: `python -m bench.gpu [--device cuda] [--json]`.

Made for the lent GPU machine (offline: give it the four Fashion-MNIST .gz files with `AELAB_DATA_DIR`):
one epoch of each case, in fp32 and in bf16 (and compiled, with `--compile`), with the Trainer as a run trains
(the training set resident on the device as uint8, losses read every 50 batches), then a 1-GPU DDP smoke test
under torchrun with NCCL.
Each row: seconds of the training epoch (without validation), validation loss after it, peak GPU memory.

  stacked-32    the book's recipe, batch 32: per-step overhead dominates on a GPU
  stacked-256   the same model at batch 256
  conv, vae, dcgan  the presets at their own batch sizes

`--device cpu --data digits --cases stacked-32 --precisions fp32 --no-ddp` runs the same code on a CPU (the test).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import torch

import aelab
from aelab import runtime

CASES = {"stacked-32": ("stacked", 32), "stacked-256": ("stacked", 256), "conv": ("conv", None),
         "vae": ("vae", None), "dcgan": ("dcgan", None)}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_epoch(case: str, precision: str, device: str, dataset: aelab.Dataset, compile: bool = False) -> dict:
    """Train ``case`` for one epoch in ``precision`` (compiled or not); seconds, validation loss, peak memory."""
    preset, batch = CASES[case]
    cfg = aelab.preset(preset, dataset.name)
    cfg.train = replace(cfg.train, epochs=1, device=device, precision=precision, compile=compile,
                        batch_size=batch or cfg.train.batch_size)
    model = aelab.build_model(cfg.model, dataset.image_shape, cfg.train.seed)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    fit = aelab.Trainer(cfg.validate().train).fit(model, dataset.split(cfg.data.validation_split))
    return {"case": case, "precision": precision, "compiled": compile, "batch_size": cfg.train.batch_size,
            "train_seconds": fit.history["train_seconds"][0], "val_loss": fit.history["val_loss"][0],
            "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None}


def ddp_smoke(device: str, data: str) -> dict:
    """One epoch of `stacked` under `torchrun --nproc-per-node 1` (NCCL on a GPU): did it finish, and how."""
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m", "aelab",
           "train", "--preset", "stacked", "--data", data, "--epochs", "1", "--device", device, "--json", "--no-eval",
           "--runs-dir", os.path.join(os.environ.get("TMPDIR", "/tmp"), "aelab-gpu-bench-runs")]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    out = json.loads(p.stdout) if p.returncode == 0 else {}
    return {"returncode": p.returncode, "seconds": time.perf_counter() - started,
            "distributed": out.get("distributed"), "val_loss": out.get("val_loss"),
            "error": None if p.returncode == 0 else p.stderr[-1500:]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--compile", action="store_true", help="each case again, compiled, in the first precision "
                        "(the compilation counts in its epoch's seconds)")
    parser.add_argument("--no-ddp", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runtime.configure()
    env = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu"}
    precisions, cases, dataset = args.precisions.split(","), args.cases.split(","), aelab.load_dataset(args.data)
    rows = [one_epoch(case, precision, args.device, dataset) for case in cases for precision in precisions]
    if args.compile:
        rows += [one_epoch(case, precisions[0], args.device, dataset, compile=True) for case in cases]
    result = {"environment": env, "rows": rows, "ddp": None if args.no_ddp else ddp_smoke(args.device, args.data)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{env['device_name']}, torch {env['torch']} (CUDA {env['cuda']})\n")
    print("| case | precision | compiled | batch | s / epoch (training) | val loss | peak MB |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "-"
        print(f"| `{r['case']}` | {r['precision']} | {'yes' if r['compiled'] else 'no'} | {r['batch_size']} | "
              f"{r['train_seconds']:.2f} | "
              f"{r['val_loss']:.4f} | {peak} |")
    if result["ddp"]:
        print(f"\nDDP smoke test (torchrun, 1 process): {json.dumps(result['ddp'])}")


if __name__ == "__main__":
    main()
