"""What continues a run exactly where it ended: optimiser states, random-number streams and counters.

A run saves it beside its weights as two files, neither of which unpickles anything when read:
``train_state.safetensors`` (every tensor: the optimisers' moments and step counts, the generators'
states) and ``train_state.json`` (the rest: the optimisers' hyperparameters and non-tensor values, the
counters). :class:`Checkpoint` is what :class:`aelab.train.Trainer` hands out after training and takes
back to continue (``python -m aelab train --resume RUN --epochs N``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import RunError

TENSORS = "train_state.safetensors"
VALUES = "train_state.json"
FILES = (TENSORS, VALUES)
GENERATORS = ("noise", "shuffle", "torch", "cuda")   # the streams a run draws from (see Checkpoint.generators)


@dataclass
class Checkpoint:
    """Where training stopped. ``optimizers`` is empty when a resumed run starts a fresh optimiser."""
    epochs: int                    # passes over the training set begun (one stopped mid-epoch counts)
    epoch: float                   # the history's last "epoch" value: where the next epoch's curve starts
    step: int                      # batches trained: the clock of the β schedule
    stopped_mid_epoch: bool = False
    optimizers: list[dict] = field(default_factory=list)   # each optimiser's state_dict, in the model's order
    # states (uint8 CPU tensors) of "noise" (corruption, a VAE's samples, a GAN's codes), "shuffle" (the
    # epochs' orders), "torch" (the global CPU stream: dropout) and "cuda" (the global stream of the GPU)
    generators: dict[str, torch.Tensor] = field(default_factory=dict)
    scaler: dict | None = None     # fp16's GradScaler state

    def save(self, folder: Path) -> None:
        """Write the two files into ``folder``."""
        tensors = {f"rng/{k}": v.contiguous() for k, v in self.generators.items()}
        optimizers = []
        for i, state_dict in enumerate(self.optimizers):
            values: dict[str, dict] = {}
            for param, entries in state_dict["state"].items():
                for name, value in entries.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"opt{i}/{param}/{name}"] = value.detach().to("cpu").contiguous()
                    else:
                        values.setdefault(str(param), {})[name] = value
            optimizers.append({"param_groups": state_dict["param_groups"], "values": values})
        save_file(tensors, str(folder / TENSORS))
        (folder / VALUES).write_text(json.dumps({
            "epochs": self.epochs, "epoch": self.epoch, "step": self.step, "stopped_mid_epoch": self.stopped_mid_epoch,
            "scaler": self.scaler, "optimizers": optimizers}, indent=1))

    @classmethod
    def load(cls, folder: Path, run: str) -> Checkpoint | None:
        """The checkpoint saved in ``folder`` (run ``run``), None when there is none (runs saved before it
        existed, examples); a damaged one raises :class:`aelab.RunError` naming what is wrong."""
        if not all((folder / f).is_file() for f in FILES):
            return None
        try:
            doc = json.loads((folder / VALUES).read_text())
            tensors = load_file(str(folder / TENSORS))
            return cls._from(doc, tensors)
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:   # JSON, safetensors and type errors
            raise RunError("run {run!r}: its training state ({files}) is damaged ({e})",
                           run=run, files=", ".join(FILES), e=e) from None

    @classmethod
    def _from(cls, doc: Any, tensors: dict[str, torch.Tensor]) -> Checkpoint:
        if not isinstance(doc, dict):
            raise TypeError(f"{VALUES} must hold an object")
        epochs, step, epoch = doc["epochs"], doc["step"], doc["epoch"]
        if not (_count(epochs) and _count(step) and isinstance(epoch, (int, float)) and math.isfinite(epoch)
                and 0 <= epoch <= epochs):
            raise ValueError("epochs, step and epoch must be counts, 0 <= epoch <= epochs")
        if doc.get("scaler") is not None and not isinstance(doc["scaler"], dict):
            raise TypeError("scaler must be an object")
        generators = {}
        for key, value in tensors.items():
            if key.startswith("rng/"):
                if key[4:] not in GENERATORS or value.dtype != torch.uint8 or value.dim() != 1:
                    raise ValueError(f"{key} is not a generator state")
                generators[key[4:]] = value
        optimizers = []
        for i, opt in enumerate(doc["optimizers"]):
            groups, values = opt["param_groups"], opt["values"]
            if not (isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                                       for g in groups) and isinstance(values, dict)):
                raise TypeError(f"optimizer {i}: param_groups must be a list of objects with params")
            state: dict[int, dict] = {int(p): dict(v) for p, v in values.items()}
            prefix = f"opt{i}/"
            for key, value in tensors.items():
                if key.startswith(prefix):
                    param, name = key[len(prefix):].split("/", 1)
                    state.setdefault(int(param), {})[name] = value
            optimizers.append({"state": state, "param_groups": groups})
        return cls(epochs, float(epoch), step, bool(doc.get("stopped_mid_epoch")), optimizers, generators,
                   doc.get("scaler"))

    def restore_optimizers(self, optimizers: list[torch.optim.Optimizer]) -> None:
        """Load the saved states into ``optimizers`` (built fresh for the same model), after checking that
        each saved tensor fits its parameter: PyTorch's own check counts parameters, not shapes."""
        if len(optimizers) != len(self.optimizers):
            raise RunError("the run saved {saved} optimiser states, the model has {needed}",
                           saved=len(self.optimizers), needed=len(optimizers))
        for opt, saved in zip(optimizers, self.optimizers):
            params = [p for group in opt.param_groups for p in group["params"]]
            for index, entries in saved["state"].items():
                if not 0 <= index < len(params):
                    raise RunError("an optimiser state names parameter {index}; the model has {n_params}",
                                   index=index, n_params=len(params))
                for name, value in entries.items():
                    if isinstance(value, torch.Tensor) and value.dim() and value.shape != params[index].shape:
                        raise RunError("the optimiser's {name} of parameter {index} has shape {shape}, the parameter "
                                       "{expected}", name=name, index=index, shape=tuple(value.shape),
                                       expected=tuple(params[index].shape))
            try:
                opt.load_state_dict(saved)
            except (ValueError, KeyError, TypeError) as e:
                raise RunError("the saved optimiser state does not fit this model ({e})", e=e) from None


def optimizers_in(handed: Any) -> list[torch.optim.Optimizer]:
    """The optimisers in what a model's ``configure_optimizers`` returned: itself, or the optimiser fields of
    the object it returned (a GAN's generator and discriminator optimisers), in their order."""
    if isinstance(handed, torch.optim.Optimizer):
        return [handed]
    return [v for v in vars(handed).values() if isinstance(v, torch.optim.Optimizer)]


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
