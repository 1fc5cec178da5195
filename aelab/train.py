"""One trainer for every model: epochs, validation, callbacks, stop requests and a NaN guard.

The loop only relies on the :class:`aelab.models.Model` contract (``configure_optimizers``,
``training_step``, ``forward`` -> Output with ``loss`` and ``terms``). Everything it records beyond the
history is a :class:`Callback`: the live preview (:class:`PreviewRecorder`), the time-lapse codes
(:class:`aelab.latent.CodeRecorder`), progress bars and the app's live view.
"""
from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .checkpoint import Checkpoint, optimizers_in
from .config import TrainConfig
from .data import Split, to_float
from .distributed import Context, sync_batch_norm
from .errors import TrainingDiverged
from .models.base import PLAIN, Update
from .runtime import INFERENCE_BATCH

__all__ = ["Callback", "Checkpoint", "FitResult", "PreviewRecorder", "Trainer", "TrainingDiverged", "TrainState",
           "beta_scale", "resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; a forced device that is missing is an error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if name == "mps" and not has_mps:
        raise RuntimeError("device 'mps' was asked for but Apple's MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


@dataclass
class TrainState:
    """What callbacks see (read it, don't keep references into it)."""
    model: torch.nn.Module          # the model being trained, on its device
    split: Split                    # the data on the model's device (uint8 images)
    epoch: int                      # current epoch, 1-based (0 before training), counted from the run's start
    epochs: int                     # the run's epochs, those of the run resumed included
    batch: int                      # batches done in the current epoch
    batches: int                    # batches per epoch
    history: dict[str, list[float]]
    loss: float = float("nan")      # running mean training loss of the current epoch, as of the last read
    batch_loss: torch.Tensor | None = None   # loss of the last batch, a 0-d tensor on the device (float() reads
                                             # it: a host synchronisation on a GPU)
    batch_terms: dict = field(default_factory=dict)   # the last batch's named terms (detached tensors)
    status: str = "running"         # running | finished | stopped | timeout | diverged
    beta: float | None = None       # a VAE's KL weight in the last batch (None: no β schedule)
    step: int = 0                   # batches trained in the run, across epochs and resumes (the β schedule's clock)

    def record(self, name: str, value: float) -> None:
        """Add ``value`` as column ``name`` of the epoch's history row (from ``on_epoch_end``)."""
        self.history.setdefault(name, []).append(float(value))


class Callback:
    """Override what you need; the trainer calls these from the training thread, in the order given."""

    def on_train_begin(self, state: TrainState) -> None: ...
    def on_batch_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


class PreviewRecorder(Callback):
    """The model's live view before training and after every epoch: reconstructions of ``n_images``
    validation images spread evenly over the validation set, or a GAN's fixed-noise samples."""

    def __init__(self, n_images: int = 8, frames: np.ndarray | None = None):
        """``frames``: the frames of the run that training continues (its timeline's): kept in front, and
        no frame is recorded before training."""
        self.n_images = n_images
        self.frames: list[np.ndarray] = list(frames) if frames is not None else []   # (n, H, W) floats in
        # [0, 1], one per epoch (0 = untrained)
        self.inputs: np.ndarray | None = None       # (n, H, W): the images reconstructed, for reconstructing models
        self._x: torch.Tensor | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self._x = to_float(state.split.val_sample(self.n_images)[0])
        self.inputs = self._x[:, 0].cpu().numpy() if state.model.can_reconstruct else None
        if not self.frames:
            self._record(state.model)

    def on_epoch_end(self, state: TrainState) -> None:
        self._record(state.model)

    def _record(self, model) -> None:
        images = model.preview(self._x)
        if images is not None:
            self.frames.append(images[:, 0].cpu().numpy())

    @property
    def latest(self) -> np.ndarray | None:
        return self.frames[-1] if self.frames else None

    def timeline(self) -> dict[str, np.ndarray]:
        """The part of a run's timeline.safetensors it fills (see :meth:`aelab.runs.Run.timeline`)."""
        if not self.frames:
            return {}
        return {"frames": np.stack(self.frames), **({"inputs": self.inputs} if self.inputs is not None else {})}


@dataclass
class FitResult:
    history: dict[str, list[float]]
    status: str                     # finished | stopped (a stop request) | timeout (the deadline) | diverged
    seconds_per_epoch: float        # median wall time of the complete epochs
    stopped_at: tuple[int, int] | None = None   # (epoch, batch) when stopped early
    device: str = "cpu"
    distributed: dict | None = None   # world_size, backend and devices of a distributed run
    checkpoint: Checkpoint | None = None   # what continues training (None after greedy training or divergence)


@dataclass
class Trainer:
    """Trains any :class:`aelab.models.Model` on a validated ``cfg``: ``model.training_step`` makes each
    update (one optimiser for an autoencoder, two alternating ones for a GAN), ``model(x, y, rng)`` gives
    the validation losses after each epoch. ``stop_event`` ends training after the current batch, and so
    does the ``deadline`` (a ``time.monotonic()`` value), with status ``timeout``.

    With ``dist`` (a process of a torchrun launch, :mod:`aelab.distributed`), every rank calls ``fit``: each
    steps on its share of every global batch through DistributedDataParallel, the ranks agree on the loss and
    on stopping after every batch, validation is summed over the ranks, and callbacks run on rank 0 only."""
    cfg: TrainConfig
    callbacks: list[Callback] = field(default_factory=list)
    stop_event: threading.Event | None = None
    eval_batch_size: int = INFERENCE_BATCH
    deadline: float | None = None
    dist: Context | None = None
    # batches between two reads of the training losses; None: every batch on a CPU (where a read costs nothing),
    # every 50 on a GPU (a read waits for the GPU to finish its queue)
    loss_read_every: int | None = None

    def fit(self, model: torch.nn.Module, split: Split, resume: Checkpoint | None = None,
            history: dict[str, list[float]] | None = None) -> FitResult:
        """Train ``model`` on ``split``; with ``cfg.greedy``, phase by phase (see :meth:`stages`), the history's
        ``phase`` column saying which, the epochs counted across the phases.

        ``resume`` continues a saved run (its weights already in ``model``, its ``history`` given) up to
        ``cfg.epochs`` in all: the optimisers, random streams and counters continue from the checkpoint, so
        that 2 epochs and then 1 more give the numbers of 3 in one go. A checkpoint without optimiser states
        starts fresh optimisers (and streams seeded from the seed and the epochs done)."""
        cfg, dist = self.cfg, self.dist
        if resume is not None and (cfg.greedy or dist):
            raise ValueError("a run continues in one process and without greedy phases")
        device = dist.device if dist else resolve_device(cfg.device)
        model.to(device)
        if dist:
            sync_batch_norm(model, device)
        # corruption noise, VAE sampling, GAN codes: a stream per rank; the shuffle is the same on every rank
        rng = torch.Generator(device).manual_seed(cfg.seed + (dist.rank if dist else 0))
        shuffle_rng = torch.Generator().manual_seed(cfg.seed)
        update = precision_update(cfg.precision, device)
        if resume is not None:
            _restore_streams(resume, rng, shuffle_rng, update, cfg.seed)
        split = split.to(device)   # uint8, converted per batch
        n, bs = len(split.x_train), cfg.batch_size
        if bs > n:
            raise ValueError(f"batch_size {bs} is larger than the training set ({n} images)")
        stages = self.stages(model)
        state = TrainState(model, split, 0, sum(c.epochs for _, c, _ in stages), 0, math.ceil(n / bs),
                           {k: list(v) for k, v in (history or {"epoch": []}).items()})
        self._emit("on_train_begin", state)
        status, stopped_at, epoch_seconds = "finished", None, []
        last_finite = _weights(model)   # what a diverged run keeps: the weights after the last finite epoch
        epoch = resume.epochs if resume else 0
        base = resume.epoch - resume.epochs if resume else 0.0   # a run stopped mid-epoch: its curve's offset
        state.step = resume.step if resume else 0
        for stage, stage_cfg, phase in stages:
            state.model, optimizers = stage, stage.configure_optimizers(stage_cfg)
            if resume is not None and resume.optimizers:
                resume.restore_optimizers(optimizers_in(optimizers))
            wrap = _step_wrapper(dist, cfg.compile)
            if wrap:
                stage.distribute(wrap)
            for _ in range(stage_cfg.epochs - (resume.epochs if resume else 0)):
                epoch += 1
                state.epoch, started = epoch, time.perf_counter()
                try:
                    sums, stop_reason = self._train_epoch(stage, split, optimizers, rng, shuffle_rng, state, update)
                except TrainingDiverged as e:
                    stage.distribute(None)
                    model.load_state_dict(last_finite)
                    model.eval()
                    state.model, state.status = model, "diverged"
                    self._emit("on_train_end", state)
                    raise TrainingDiverged(e.said, FitResult(state.history, "diverged", float("nan"),
                                                             (epoch, state.batch), str(device),
                                                             dist.describe() if dist else None)) from None
                if state.batch < state.batches:
                    status, stopped_at = stop_reason, (epoch, state.batch)
                if state.batch == 0:
                    epoch -= 1   # nothing of it was trained
                    break
                train_seconds = time.perf_counter() - started
                val = self.evaluate(stage, split.x_val, split.y_val, rng)
                row = {"epoch": base + epoch - 1 + state.batch / state.batches, **({"phase": phase} if phase else {}),
                       **sums, **{f"val_{k}": v for k, v in val.items()},
                       **({"beta": state.beta} if state.beta is not None else {}),
                       "train_seconds": train_seconds, "seconds": time.perf_counter() - started}
                for k, v in row.items():
                    state.history.setdefault(k, []).append(float(v))
                if status == "finished":
                    epoch_seconds.append(row["seconds"])
                last_finite = _weights(model)
                self._emit("on_epoch_end", state)
                if status != "finished":
                    break
            stage.distribute(None)
            if status != "finished":
                break
        # taken before on_train_end, whose callbacks may draw from the global stream: a run trained in one go
        # goes from the last epoch's end straight into the next epoch
        checkpoint = None if cfg.greedy else Checkpoint(
            epochs=epoch, epoch=state.history["epoch"][-1] if state.history["epoch"] else 0.0, step=state.step,
            stopped_mid_epoch=stopped_at is not None,
            optimizers=[o.state_dict() for o in optimizers_in(optimizers)],
            generators=_stream_states(rng, shuffle_rng, device), scaler=update.scaler.state_dict()
            if update.scaler is not None else None)
        state.model, state.status = model, status
        self._emit("on_train_end", state)
        model.eval()
        return FitResult(state.history, status, statistics.median(epoch_seconds) if epoch_seconds else float("nan"),
                         stopped_at, str(device), dist.describe() if dist else None, checkpoint)

    def stages(self, model) -> list[tuple[torch.nn.Module, TrainConfig, int]]:
        """(what to train, its settings, its phase) in order: the model itself (phase 0: no phases), or with
        ``cfg.greedy`` each of ``model.greedy_phases()`` for ``epochs`` (the outer at ``lr``, the inner ones
        at ``inner_lr``), then the whole model for ``finetune_epochs`` at ``finetune_lr`` (phase P + 1)."""
        cfg = self.cfg
        if not cfg.greedy:
            return [(model, cfg, 0)]
        phases = model.greedy_phases()
        out = [(p, replace(cfg, lr=cfg.inner_lr or cfg.lr) if i else cfg, i + 1) for i, p in enumerate(phases)]
        if cfg.finetune_epochs:
            out.append((model, replace(cfg, lr=cfg.finetune_lr or cfg.lr, epochs=cfg.finetune_epochs),
                        len(phases) + 1))
        return out

    def _train_epoch(self, model, split: Split, optimizers, rng, shuffle_rng, state: TrainState,
                     update: Update = PLAIN) -> tuple[dict[str, float], str | None]:
        """One pass over the shuffled training set (until a stop request); the mean loss and terms, and why it
        stopped early (None when it did not).

        Losses stay on the device and are read (a host synchronisation on a GPU) every ``loss_read_every``
        batches and at the epoch's end, where the NaN guard checks each of them."""
        model.train()
        state.batch, bs, dist = 0, self.cfg.batch_size, self.dist
        read_every = 1 if dist else self.loss_read_every or (1 if split.x_train.device.type == "cpu" else 50)
        order = torch.randperm(len(split.x_train), generator=shuffle_rng).to(split.x_train.device)
        sums: dict[str, torch.Tensor] = {}
        unread: list[torch.Tensor] = []   # the losses of the batches since the last read, on the device
        loss_sum = 0.0
        stop_reason = None
        for b in range(state.batches):
            if not dist:
                stop_reason = self._why_stopped()
                if stop_reason:
                    break
            # a gather per batch, not one copy of the training set per epoch: 47 MB less on Fashion-MNIST
            idx, scale = order[b * bs:(b + 1) * bs], 1.0
            if dist:
                idx, scale = dist.shard(idx)
            step = replace(update, loss_scale=scale) if dist else update
            if self.cfg.beta_schedule != "constant":
                model.beta_scale = beta_scale(self.cfg, state.step, state.batches)
                state.beta = model.cfg.beta * model.beta_scale
            state.step += 1
            # index_select, not x[idx]: Python's indexing path takes 20 µs of a 1.5 ms step on 32 images, this 3
            out = model.training_step(to_float(split.x_train.index_select(0, idx)), split.y_train.index_select(0, idx),
                                      optimizers, rng, step)
            if dist:   # every rank: the global loss, and whether any rank was asked to stop
                batch_loss, stop_reason = dist.batch_end(out.loss, scale, self._why_stopped())
            else:
                batch_loss = out.loss.detach().float()
            unread.append(batch_loss)
            if len(unread) >= read_every or b + 1 == state.batches or stop_reason:
                loss_sum += self._read_losses(unread, b + 1, state)
                state.loss = loss_sum / (b + 1)
                unread = []
            terms = {k: v.detach().float() for k, v in out.terms.items()}
            share = scale / dist.world_size if dist else 1.0   # this rank's share of the batch's images
            for k, v in terms.items():
                if k in sums:
                    sums[k].add_(v, alpha=share)
                else:
                    sums[k] = v * share   # a new tensor, which the next batches add to in place
            state.batch, state.batch_loss, state.batch_terms = b + 1, batch_loss, terms
            self._emit("on_batch_end", state)
            if stop_reason:
                break
        if unread:   # a stop request between two reads
            loss_sum += self._read_losses(unread, state.batch, state)
        done = max(state.batch, 1)
        state.loss = loss_sum / done
        if dist and sums:
            sums = dict(zip(sums, dist.sum(torch.stack(list(sums.values())))))
        return {"loss": loss_sum / done, **{k: (v / done).item() for k, v in sums.items()}}, stop_reason

    def _read_losses(self, losses: list[torch.Tensor], last_batch: int, state: TrainState) -> float:
        """The sum of the batches' ``losses`` (one host read), after checking that each is finite."""
        values = torch.stack(losses).tolist()
        for i, value in enumerate(values):
            if not math.isfinite(value):
                batch = last_batch - len(values) + 1 + i
                raise TrainingDiverged(
                    "the training loss became {value} at epoch {epoch}, batch {batch}/{batches} (learning rate "
                    "{lr}, optimizer {optimizer}). Try a smaller learning rate, another optimizer (adam), or a "
                    "smaller loss weight.", value=value, epoch=state.epoch, batch=batch, batches=state.batches,
                    lr=self.cfg.lr, optimizer=self.cfg.optimizer)
        return math.fsum(values)

    def _why_stopped(self) -> str | None:
        """'stopped' after a stop request, 'timeout' past the deadline, else None."""
        if self.stop_event is not None and self.stop_event.is_set():
            return "stopped"
        if self.deadline is not None and time.monotonic() > self.deadline:
            return "timeout"
        return None

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, x_uint8: torch.Tensor, y: torch.Tensor | None = None,
                 rng: torch.Generator | None = None) -> dict[str, float]:
        """Mean loss and terms over ``x_uint8`` (labels ``y``) in eval mode (no corruption), weighted by batch size.
        Distributed, each rank evaluates its part and the sums are added over the ranks."""
        n = len(x_uint8)
        if n == 0:
            return {}
        start, end = self.dist.shard_range(n) if self.dist else (0, n)
        # (first, last, weight) per batch; a rank without images weighs one at 0, to send the same terms
        spans = [(i, min(i + self.eval_batch_size, end), 1.0) for i in range(start, end, self.eval_batch_size)]
        model.eval()
        totals: dict[str, torch.Tensor] = {}
        for i, j, weight in spans or [(0, 1, 0.0)]:
            out = model(to_float(x_uint8[i:j]), None if y is None else y[i:j], rng)
            for k, v in {"loss": out.loss, **out.terms}.items():
                totals[k] = totals.get(k, 0.0) + v.detach().double() * ((j - i) * weight)
        model.train()
        if self.dist:
            totals = dict(zip(totals, self.dist.sum(torch.stack(list(totals.values())))))
        return {k: float(v) / n for k, v in totals.items()}

    def _emit(self, hook: str, state: TrainState) -> None:
        if self.dist and not self.dist.is_main:
            return
        for cb in self.callbacks:
            getattr(cb, hook)(state)


def beta_scale(cfg: TrainConfig, step: int, batches: int) -> float:
    """The factor of a VAE's KL weight (``model.beta``) at training step ``step`` (0-based, ``batches`` steps an
    epoch) under ``cfg.beta_schedule``: 1 throughout (constant); rising linearly from 0 to 1 over
    ``beta_epochs`` epochs, then 1 (warmup); in cycles of ``beta_epochs`` epochs, rising from 0 to 1 over the
    first half of each and 1 over the second (cyclical, Fu et al., 2019)."""
    if cfg.beta_schedule == "constant":
        return 1.0
    epochs = step / batches
    if cfg.beta_schedule == "warmup":
        return min(1.0, epochs / cfg.beta_epochs)
    return min(1.0, 2.0 * (epochs % cfg.beta_epochs) / cfg.beta_epochs)


def _restore_streams(resume: Checkpoint, rng: torch.Generator, shuffle_rng: torch.Generator, update: Update,
                     seed: int) -> None:
    """Set the random streams (and fp16's loss scale) where ``resume`` left them; without saved streams (a
    fresh optimiser), new ones from the seed and the epochs done, so the next epoch does not repeat the first."""
    saved = resume.generators
    if "noise" in saved and "shuffle" in saved:
        rng.set_state(saved["noise"])
        shuffle_rng.set_state(saved["shuffle"])
    else:
        rng.manual_seed(seed + 7919 * resume.epochs)
        shuffle_rng.manual_seed(seed + 7919 * resume.epochs)
    if "torch" in saved:
        torch.set_rng_state(saved["torch"])
    if "cuda" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state(saved["cuda"])
    if update.scaler is not None and resume.scaler:
        update.scaler.load_state_dict(resume.scaler)


def _stream_states(rng: torch.Generator, shuffle_rng: torch.Generator, device: torch.device) -> dict:
    """The states of the streams a run draws from (see :attr:`Checkpoint.generators`)."""
    states = {"noise": rng.get_state(), "shuffle": shuffle_rng.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def batch_means(values: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """The mean of each list of 0-d tensors (batches' losses and terms), read from the device at once."""
    means = torch.stack([torch.stack(v).double().mean() for v in values.values()]).tolist()
    return dict(zip(values, means))


def precision_update(precision: str, device: torch.device) -> Update:
    """The training step's :class:`~aelab.models.base.Update` for ``precision``: fp32 as is; bf16 forward passes
    under autocast; fp16 the same with a GradScaler (it skips steps whose gradients overflow)."""
    if precision == "fp32":
        return PLAIN
    if device.type == "mps" and precision == "bf16":
        raise RuntimeError("precision bf16 is not available on mps: use fp16 or fp32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return Update(device_type=device.type, autocast=dtype, scaler=scaler)


def _step_wrapper(dist: Context | None, compile: bool):
    """What a model's step networks go through (:meth:`~aelab.models.Model.distribute`): DistributedDataParallel
    under torchrun, then ``torch.compile`` when asked (of the DDP wrapper, as PyTorch advises), or None."""
    if not dist and not compile:
        return None

    def wrap(net: torch.nn.Module) -> torch.nn.Module:
        net = dist.wrap(net) if dist else net
        return torch.compile(net) if compile else net
    return wrap


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's state on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
