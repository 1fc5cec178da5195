"""Unsupervised pretraining study, timed: ``python -m bench.pretrain [--encoder RUN ...] [--json]``.

Runs the default study (budgets 10, 50, 100, 500, 1000, 5000; scratch, frozen, fine-tuned and pixels; 3
seeds) on each encoder (default: the shipped ``stacked-fashion`` example) into a temporary runs directory,
and prints one JSON object: the wall-clock seconds, the threads, and every row of the summary (mean, sd,
per-seed accuracies). Target (issue 14): under 3 minutes for ``stacked-fashion`` on the 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from aelab import pretrain
from aelab.config import StudyConfig
from aelab.runs import find_run


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--encoder", action="append", help="encoder run(s) (default: stacked-fashion)")
    p.add_argument("--seeds", type=int, default=StudyConfig.seeds)
    p.add_argument("--json", action="store_true", help="print the JSON object on one line")
    args = p.parse_args(argv)
    encoders = [find_run(name) for name in args.encoder or ["stacked-fashion"]]
    cfg = StudyConfig(seeds=args.seeds).validate()
    with tempfile.TemporaryDirectory() as runs:
        started = time.perf_counter()
        study = pretrain.run_study(encoders, cfg, runs_dir=runs)
        seconds = time.perf_counter() - started
    result = {"encoders": [e.name for e in encoders], "seconds": round(seconds, 1), "threads": torch.get_num_threads(),
              "config": cfg.to_dict(), "results": pretrain.summarize(study.fits)}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
