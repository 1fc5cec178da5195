"""Many runs at once, and many runs side by side: sweeps over one or two settings, and the table of every run
of a family's hyperparameters against its final metrics (the Runs page's parallel coordinates)."""
from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from typing import Any, Iterable

from .config import RunConfig, format_value, setting_names, with_overrides
from .errors import ConfigError
from .runs import Run

MAX_SWEEP_RUNS = 16     # runs of one sweep (every one queues as a job under the server's limits)
MAX_SWEEP_AXES = 2
MAX_AXIS_VALUES = 8
NOT_SWEPT = {"epochs"}  # a sweep compares settings at equal training; its epochs are the form's


def sweepable(family: str) -> list[str]:
    """The numeric settings of ``family`` a sweep may vary (``lr``, ``latent``, ``batch_size``, ``seed`` ...)."""
    return [name for section, name, hint, _, families in setting_names()
            if hint in (int, float) and section != "data" and name not in NOT_SWEPT
            and (section != "model" or family in families)]


def parse_values(text: str) -> list[str]:
    """The comma-separated values of one axis, in order, without repeats (1 to ``MAX_AXIS_VALUES``)."""
    values = list(dict.fromkeys(v.strip() for v in str(text).split(",") if v.strip()))
    if not 1 <= len(values) <= MAX_AXIS_VALUES:
        raise ConfigError("give 1 to {max_axis_values} comma-separated values per setting, got {n_values}",
                          max_axis_values=MAX_AXIS_VALUES, n_values=len(values))
    return values


def plan_sweep(cfg: RunConfig, axes: dict[str, Iterable[str]], stamp: str | None = None) -> list[tuple[str, RunConfig]]:
    """(run name, validated config) for every combination of the ``axes`` ({setting: values}, one or two
    settings of :func:`sweepable`) applied to ``cfg``; a value that does not validate is refused with the
    setting's message, before anything starts."""
    if not 1 <= len(axes) <= MAX_SWEEP_AXES:
        raise ConfigError("a sweep varies 1 or {max_sweep_axes} settings, got {n_axes}",
                          max_sweep_axes=MAX_SWEEP_AXES, n_axes=len(axes))
    allowed = sweepable(cfg.model.family)
    for name in axes:
        if name not in allowed:
            raise ConfigError("a sweep cannot vary {name!r}; it varies one of {allowed}",
                              name=name, allowed=", ".join(allowed))
    grid = [list(values) for values in axes.values()]
    count = math.prod(len(v) for v in grid)
    if count > MAX_SWEEP_RUNS:
        raise ConfigError("this sweep has {count} runs; a sweep has at most {max_sweep_runs}",
                          count=count, max_sweep_runs=MAX_SWEEP_RUNS)
    stamp = stamp or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    prefix = f"sweep-{cfg.preset or cfg.model.arch}-{stamp}"
    planned = []
    for combo in itertools.product(*grid):
        changes = dict(zip(axes, combo))
        run_cfg = with_overrides(cfg, changes).validate()
        label = "-".join(f"{k}{format_value(_setting(run_cfg, k))}" for k in changes)
        planned.append((re.sub(r"[^A-Za-z0-9._-]", "-", f"{prefix}-{label}")[:80].rstrip("-."), run_cfg))
    return planned


def _setting(cfg: RunConfig, name: str) -> Any:
    for section in (cfg.train, cfg.model, cfg.data):
        if hasattr(section, name):
            return getattr(section, name)
    raise KeyError(name)


# ------------------------------------------------------------------------------------- hyperparameters
def final_metrics(run: Run) -> dict[str, float]:
    """A run's final numbers: validation loss, rounded accuracy, test metrics, the kNN probe, FID (domain)."""
    h, m = run.history, run.metrics
    out = {"val loss": run.final_val_loss, "val rounded acc": (h.get("val_rounded_acc") or [None])[-1],
           "active units": (h.get("active_units") or [None])[-1],
           **{f"test {k}": v for k, v in (m.get("test") or {}).items()},
           "kNN probe": (m.get("probes") or {}).get("codes", {}).get("knn"),
           "FID (domain)": (m.get("quality") or {}).get("fid")}
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def hparam_rows(runs: Iterable[Run]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """One row per run (``run``, then its settings and final metrics), the settings that differ between the
    runs (the others say nothing in a comparison), and the metrics that every run has. Runs of one family."""
    runs = list(runs)
    settings = [{f"{section}.{k}" if section == "data" else k: format_value(v) if isinstance(v, tuple) else v
                 for section in ("data", "model", "train") for k, v in vars(getattr(r.config, section)).items()}
                for r in runs]
    names = list(dict.fromkeys(k for s in settings for k in s))
    varying = [k for k in names if len({repr(s.get(k)) for s in settings}) > 1]
    metrics = [final_metrics(r) for r in runs]
    common = [k for k in dict.fromkeys(k for m in metrics for k in m) if all(k in m for m in metrics)]
    rows = [{"run": r.name, **{k: s.get(k) for k in varying}, **{k: m[k] for k in common}, "epochs": r.epochs_done}
            for r, s, m in zip(runs, settings, metrics)]
    return rows, varying, common
