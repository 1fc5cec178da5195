"""Run by tests/test_distributed.py under ``torchrun --nproc-per-node 2`` (gloo on CPU), one mode per launch:

- ``batchnorm OUT``: each rank normalises its part of a batch with AE Lab's synchronised batch norm; rank 0
  writes to OUT (JSON) how far the outputs and gradients are from ``nn.BatchNorm`` on the whole batch.
- ``fail RANK -- ARGS``: ``python -m aelab ARGS``, except that rank RANK raises in its second epoch.
"""
import json
import sys

import torch
from torch import nn

from aelab import cli, distributed
from aelab.train import Trainer


def batchnorm(out_path: str) -> None:
    ctx = distributed.setup("cpu")
    gen = torch.Generator().manual_seed(0)
    errors = {}
    # (per-rank image counts, input shape after the batch): uneven parts, 2-D (BatchNorm1d) and 4-D inputs
    for counts, shape, reference in (((5, 3), (4, 6, 6), nn.BatchNorm2d(4, eps=1e-3, momentum=0.01)),
                                     ((4, 4), (7,), nn.BatchNorm1d(7))):
        x = torch.randn(sum(counts), *shape, generator=gen) * 3 + 1
        weights = torch.randn(sum(counts), *shape, generator=gen)   # d(loss)/d(output), per image
        with torch.no_grad():
            reference.weight.uniform_(0.5, 1.5, generator=gen)
            reference.bias.uniform_(-1, 1, generator=gen)
        synced = distributed.sync_batch_norm(nn.Sequential(reference), ctx.device)[0]
        synced.load_state_dict(reference.state_dict())
        for module in (reference, synced):
            module.zero_grad()
        start = sum(counts[:ctx.rank])
        part = x[start:start + counts[ctx.rank]].clone().requires_grad_(True)
        y = synced(part)
        (y * weights[start:start + counts[ctx.rank]]).sum().backward()
        # the parts' outputs and input gradients in place in the whole batch, the parameter gradients summed
        whole_y, whole_g = torch.zeros_like(x), torch.zeros_like(x)
        whole_y[start:start + len(part)], whole_g[start:start + len(part)] = y.detach(), part.grad
        all_y, all_g = ctx.sum(whole_y), ctx.sum(whole_g)
        grad_w, grad_b = ctx.sum(synced.weight.grad), ctx.sum(synced.bias.grad)

        whole = x.clone().requires_grad_(True)
        ref_y = reference(whole)
        (ref_y * weights).sum().backward()
        name = type(reference).__name__
        errors[name] = {
            "output": (all_y - ref_y).abs().max().item(),
            "input_grad": (all_g - whole.grad).abs().max().item(),
            "weight_grad": (grad_w - reference.weight.grad).abs().max().item(),
            "bias_grad": (grad_b - reference.bias.grad).abs().max().item(),
            "running_mean": (synced.running_mean - reference.running_mean).abs().max().item(),
            "running_var": (synced.running_var - reference.running_var).abs().max().item(),
        }
    if ctx.is_main:
        with open(out_path, "w") as f:
            json.dump(errors, f)
    distributed.teardown()


def fail(rank: int, argv: list[str]) -> int:
    train_epoch = Trainer._train_epoch

    def failing(self, model, split, optimizers, rng, shuffle_rng, state, *rest):
        if self.dist.rank == rank and state.epoch == 2:
            raise RuntimeError("injected failure")
        return train_epoch(self, model, split, optimizers, rng, shuffle_rng, state, *rest)

    Trainer._train_epoch = failing
    return cli.main(argv)


if __name__ == "__main__":
    if sys.argv[1] == "batchnorm":
        batchnorm(sys.argv[2])
    else:
        sys.exit(fail(int(sys.argv[2]), sys.argv[sys.argv.index("--") + 1:]))
