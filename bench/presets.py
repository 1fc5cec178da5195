"""Train every preset at the book's epoch count on Fashion-MNIST and record validation loss and speed.

    python -m bench.presets [--presets stacked,vae] [--out bench/PRESETS.md]
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import tempfile
from pathlib import Path

import torch

import aelab


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default=",".join(aelab.PRESETS))
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", default=str(Path(__file__).with_name("PRESETS.md")))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for name in args.presets.split(","):
            cfg = aelab.preset(name, args.data)
            exp = aelab.train(cfg, runs_dir=runs, evaluate=False)
            h = exp.fit.history
            terms = ", ".join(f"{k} {h['val_' + k][-1]:.4f}" for k in ("recon", "kl", "nelbo", "sparsity")
                              if "val_" + k in h)
            rows.append(f"| `{name}` | {cfg.train.epochs} | {h['val_loss'][-1]:.4f} | {terms} | "
                        f"{exp.fit.seconds_per_epoch:.2f} |")
            print(rows[-1], flush=True)
    text = "\n".join([
        f"# Presets on {args.data}", "",
        f"Measured {dt.date.today()} on {platform.machine()} with {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, `python -m bench.presets`. Validation split 0.1 (last 6,000 training images).", "",
        "| preset | epochs | val loss | val terms | s / epoch (median) |", "|---|---|---|---|---|", *rows, ""])
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
