"""Data-parallel training under ``torchrun``: one run trained by several processes with PyTorch's
DistributedDataParallel (NCCL on GPUs, gloo on CPUs), on one machine or several.

The trainer asks this module for three things (see :class:`Context`):

- **which images of a global batch are this rank's** (:meth:`Context.shard`). ``batch_size`` stays the global
  batch, the book's meaning: every rank draws the same shuffled order (same seed), and each global batch is
  split as evenly as possible, the last partial batch too, so every image counts once. A rank's loss is
  scaled by ``world_size * its share`` before ``backward``, and DDP averages the gradients over the ranks,
  so they equal the single-process mean over the whole batch even when the shares differ.
- **the networks to step through**, wrapped in DDP (:meth:`Context.wrap`), so that ``backward`` all-reduces
  their gradients. Batch norm becomes synchronised first (:func:`sync_batch_norm`).
- **agreement**: one small all-reduce per batch gives every rank the global loss and whether any rank asked to
  stop (Ctrl-C, a deadline), so they all stop after the same batch; validation sums are reduced the same way.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["Context", "launched_by_torchrun", "setup", "sync_batch_norm"]



def launched_by_torchrun() -> bool:
    """True in a process that torchrun (or another launcher setting RANK and WORLD_SIZE) started."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass
class Context:
    """This process's place in a distributed run (``world_size`` processes, this one ``rank``)."""
    rank: int
    world_size: int
    backend: str                    # nccl | gloo
    device: torch.device            # this rank's device (cuda:LOCAL_RANK on GPUs)
    devices: list[str] = field(default_factory=list)   # every rank's "host:device", in rank order

    @property
    def is_main(self) -> bool:
        """Rank 0 reports progress, evaluates on the test set and writes the run."""
        return self.rank == 0

    def describe(self) -> dict:
        """What a run records about how it was trained."""
        return {"world_size": self.world_size, "backend": self.backend, "devices": self.devices}

    # ------------------------------------------------------------------------------ batches
    def shard(self, batch_idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's part of a global batch (indices) and the loss scale that makes the ranks' averaged
        gradients the mean over the whole batch: ``world_size * n_rank / n_batch``. A rank left without an
        image (a last batch smaller than the world) steps on one image with scale 0, so that every rank
        still takes part in the all-reduce."""
        start, end = self.shard_range(len(batch_idx))
        if start == end:
            return batch_idx[:1], 0.0
        return batch_idx[start:end], self.world_size * (end - start) / len(batch_idx)

    def shard_range(self, n: int) -> tuple[int, int]:
        """[start, end) of this rank's contiguous part of ``n`` items, the parts as even as can be."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    # ----------------------------------------------------------------------------- networks
    def wrap(self, net: nn.Module) -> DistributedDataParallel:
        """``net`` in DistributedDataParallel: its parameters are broadcast from rank 0 now, and its gradients
        are averaged over the ranks in every ``backward`` of a pass made through the wrapper."""
        on_gpu = self.device.type == "cuda"
        return DistributedDataParallel(net, device_ids=[self.device.index] if on_gpu else None,
                                       output_device=self.device.index if on_gpu else None)

    # ---------------------------------------------------------------------------- agreement
    def batch_end(self, loss: torch.Tensor, scale: float, stop: str | None) -> tuple[torch.Tensor, str | None]:
        """The global mean loss of the batch (each rank's mean weighted by its share) and the stop reason of
        any rank ('timeout' over 'stopped'), the same on every rank."""
        flags = [float(stop == "stopped"), float(stop == "timeout")]
        packed = torch.cat([loss.detach().float().reshape(1) * (scale / self.world_size),
                            torch.tensor(flags, device=loss.device)])
        dist.all_reduce(packed)   # (3,): the loss, how many ranks were asked to stop, how many ran out of time
        stopped, timed_out = packed[1:].tolist()
        return packed[0], "timeout" if timed_out else "stopped" if stopped else None

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the ranks (a copy)."""
        out = values.detach().clone()
        dist.all_reduce(out)
        return out


def setup(device: str = "auto") -> Context:
    """Join the process group torchrun set up (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...):
    NCCL with one GPU per local rank when the device is ``cuda`` (or ``auto`` with GPUs), gloo on CPUs."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if torch.cuda.device_count() <= local_rank:
            raise RuntimeError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                               "start at most that many processes per node")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    elif device in ("auto", "cpu"):
        dev = torch.device("cpu")
    else:
        raise RuntimeError(f"device {device!r} cannot train under torchrun: use cuda or cpu")
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, device_id=dev if use_cuda else None)
    names: list[str | None] = [None] * world
    dist.all_gather_object(names, f"{socket.gethostname()}:{dev}")
    return Context(rank, world, backend, dev, [str(n) for n in names])


def teardown() -> None:
    """Leave the process group (each rank, once its work is done)."""
    if dist.is_initialized():
        dist.destroy_process_group()


class _CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the whole global batch, on CPUs: PyTorch's
    ``SyncBatchNorm`` runs only on GPUs (its ``batch_norm_stats`` kernels are CUDA-only). Each rank sums its
    images' values and squares per channel, a differentiable all-reduce adds the ranks' sums, and the
    normalisation and the running statistics follow from them as in ``BatchNorm``. Same parameters and buffers
    as ``BatchNorm1d/2d``, so a run saves and loads as one trained in a single process."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels, dims = x.shape[1], [0, *range(2, x.dim())]
        count = x.new_tensor([x.numel() / channels])
        # (2C + 1,): per-channel sums and sums of squares, and the number of values, over every rank
        totals = dist_nn.all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = totals[-1]
        mean = totals[:channels] / n
        var = (totals[channels:2 * channels] / n - mean * mean).clamp_min(0)   # biased, as BatchNorm normalises
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1).clamp_min(1))
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def sync_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every batch norm layer synchronised over the ranks (in place where it can be):
    ``nn.SyncBatchNorm`` on GPUs, :class:`_CPUSyncBatchNorm` on CPUs."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, _CPUSyncBatchNorm):
            synced = _CPUSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                       child.track_running_stats).to(device)
            synced.load_state_dict(child.state_dict())
            setattr(model, name, synced)
        else:
            sync_batch_norm(child, device)
    return model
