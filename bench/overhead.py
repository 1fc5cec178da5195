"""aelab's Trainer against a hand-written PyTorch loop on the `stacked` preset, interleaved in one run; and where
a training step's time goes.

    python -m bench.overhead [--rounds 5] [--data fashion-mnist]
    python -m bench.overhead --parts stacked,sparse-kl,vae [--rounds 5]

The first: both train the same model (Keras init) with SGD lr 1.5, batch 32, on the same uint8 tensors with a
fresh permutation per epoch; only the training pass is timed (no validation).

``--parts``: each preset's training step (its own batch size, 400 batches of Fashion-MNIST) split into the
forward pass (losses and terms), the backward pass and the optimiser (zero_grad and step), and beside it the
step's matrix products alone (each mm/addmm/bmm of one step recorded with its operands, then replayed): the floor
that any framework computing the same products in float32 pays. ms per step: median (min-max) over rounds.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

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


class _Products(TorchDispatchMode):
    """Records every matrix product that runs under it, with copies of its operands (their strides kept)."""
    PRODUCTS = (torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default)

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.PRODUCTS:
            self.calls.append((func, [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args],
                               kwargs or {}))
        return func(*args, **(kwargs or {}))


def step_parts(preset: str, rounds: int, data: str = "fashion-mnist", batches: int = 400) -> dict[str, list[float]]:
    """ms per training step of an autoencoder ``preset``'s parts (see the module's docstring), one value per round."""
    cfg = aelab.preset(preset, data)
    if cfg.model.family != "autoencoder":
        raise ValueError(f"{preset} is not an autoencoder: its step is not one forward and one backward pass")
    ds = aelab.load_dataset(data)
    split = ds.split(cfg.data.validation_split)
    bs = cfg.train.batch_size
    xs = [to_float(split.x_train[i * bs:(i + 1) * bs]) for i in range(min(batches, len(split.x_train) // bs))]
    model = aelab.build_model(cfg.model, ds.image_shape, 0).train()
    opt = model.configure_optimizers(cfg.train)
    rng = torch.Generator().manual_seed(0)
    with _Products() as products:
        model.training_step(xs[0], None, opt, rng)
    opt.zero_grad(set_to_none=True)   # the recorded step leaves its gradients, which the first timed one would add to
    parts = {name: [] for name in ("step", "forward", "backward", "optimizer", "products")}
    clock = time.perf_counter
    for _ in range(rounds):
        spent = dict.fromkeys(parts, 0.0)
        for x in xs:
            t0 = clock()
            out = model(x, None, rng)
            t1 = clock()
            out.loss.backward()
            t2 = clock()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t3 = clock()
            for func, operands, kwargs in products.calls:
                func(*operands, **kwargs)
            t4 = clock()
            spent["forward"] += t1 - t0
            spent["backward"] += t2 - t1
            spent["optimizer"] += t3 - t2
            spent["step"] += t3 - t0
            spent["products"] += t4 - t3
        for name in parts:
            parts[name].append(spent[name] / len(xs) * 1e3)
    return parts


def parts_table(presets: list[str], rounds: int, data: str = "fashion-mnist") -> list[str]:
    """Markdown rows of :func:`step_parts` for each preset: median (min-max) over the rounds."""
    from bench.__main__ import spread

    lines = ["| preset | batch | step | forward | backward | optimizer | matrix products alone | products / step |",
             "|---|---|---|---|---|---|---|---|"]
    for preset in presets:
        parts = step_parts(preset, rounds, data)
        share = statistics.median(parts["products"]) / statistics.median(parts["step"])
        lines.append(f"| `{preset}` | {aelab.preset(preset, data).train.batch_size} | "
                     + " | ".join(spread(parts[name], 3) for name in ("step", "forward", "backward", "optimizer",
                                                                       "products")) + f" | {share:.0%} |")
        print(lines[-1], flush=True)
    return lines


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--parts", help="comma-separated presets: split their training step instead")
    args = parser.parse_args(argv)
    aelab.runtime.configure()   # the malloc thresholds and thread pools of the CLI, the app's workers and make bench
    if args.parts:
        return {"parts": parts_table(args.parts.split(","), args.rounds, args.data)}
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
