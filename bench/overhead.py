"""aelab's Trainer against a hand-written PyTorch loop on the `stacked` preset, interleaved in one run.

    python -m bench.overhead [--rounds 5] [--data fashion-mnist]

Both train the same model (Keras init) with SGD lr 1.5, batch 32, on the same uint8 tensors with a
fresh permutation per epoch; only the training pass is timed (no validation).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import aelab
from aelab.data import to_float
from aelab.train import Trainer


def plain_epoch(model, opt, x_uint8, batch_size, gen) -> float:
    started = time.perf_counter()
    x_epoch = x_uint8[torch.randperm(len(x_uint8), generator=gen)]
    for i in range(0, len(x_epoch), batch_size):
        xb = to_float(x_epoch[i:i + batch_size])
        loss = F.binary_cross_entropy_with_logits(model.decode(model.encode(xb)), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - started


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", default="fashion-mnist")
    args = parser.parse_args(argv)
    cfg = aelab.preset("stacked", args.data)
    ds = aelab.load_dataset(args.data)
    split = ds.split(cfg.data.validation_split)
    cfg.train.epochs = 1
    plain_model = aelab.build_model(cfg.model, ds.image_shape, 0).train()
    opt = torch.optim.SGD(plain_model.parameters(), lr=cfg.train.lr)
    gen = torch.Generator().manual_seed(0)
    trainer_model = aelab.build_model(cfg.model, ds.image_shape, 0)
    ours, plain = [], []
    for r in range(args.rounds):
        plain.append(plain_epoch(plain_model, opt, split.x_train, cfg.train.batch_size, gen))
        ours.append(Trainer(cfg.train).fit(trainer_model, split).history["train_seconds"][0])
        print(f"round {r + 1}: trainer {ours[-1]:.3f} s, plain loop {plain[-1]:.3f} s", flush=True)
    result = {"trainer_s": statistics.median(ours), "plain_s": statistics.median(plain)}
    result["ratio"] = result["trainer_s"] / result["plain_s"]
    print(f"median s/epoch: trainer {result['trainer_s']:.3f}, plain loop {result['plain_s']:.3f}, "
          f"ratio {result['ratio']:.3f}")
    return result


if __name__ == "__main__":
    main()
