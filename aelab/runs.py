"""The run store: one directory per run with config.json, history.json, metrics.json, model.safetensors.

A pretraining study (:mod:`aelab.pretrain`) lives in the same store, in a directory holding study.json
(its config and meta) and results.json (one record per trained classifier). It is listed apart
(:meth:`RunStore.scan_studies`) and is never opened as a model.

A run is written into a hidden temporary directory and renamed into place, so a crash never
leaves a half-written run that looks complete. Weights are safetensors and everything else is
JSON: opening a run never unpickles anything.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from . import checkpoint as ckpt
from .checkpoint import Checkpoint
from .config import RunConfig, StudyConfig
from .errors import ConfigError, RunError
from .files import remove_idle, write_json_atomic
from .models import MODEL_CLASSES, Model, build_model, check_size

FORMAT = 2   # 2: a model config per family; format 1 (one flat model config) is read too
FILES = ("config.json", "history.json", "metrics.json", "model.safetensors")
STUDY_FILES = ("study.json", "results.json")   # study.json is written last: it marks a study complete
STUDY_VARIANTS = ("scratch", "frozen", "finetuned", "pixels")
COMPARISON_FILE = "comparison.json"   # a PCA-vs-autoencoders comparison (aelab.dimred): one file, written whole
COMPARISON_MODELS = ("pca", "linear", "nonlinear")
MARKERS = ("study.json", COMPARISON_FILE)   # a folder holding one of these is not a run
TIMELINE = "timeline.safetensors"   # optional: the live preview and the codes after every epoch
TIMELINE_IMAGES = ("frames", "inputs")   # stored as uint8, returned as floats in [0, 1]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
STATUSES = ("finished", "stopped", "timeout", "diverged")
STALE_TMP_S = 3600        # a save takes seconds; a .tmp- folder idle for an hour was left by a killed process
MAX_IMAGE_SIDE = 4096


def default_runs_dir() -> Path:
    return Path(os.environ.get("AELAB_RUNS_DIR") or "runs")


def examples_dir() -> Path:
    """The shipped example runs (read-only): $AELAB_EXAMPLES_DIR or ``examples/`` beside the package."""
    return Path(os.environ.get("AELAB_EXAMPLES_DIR") or Path(__file__).resolve().parents[1] / "examples")


def check_name(name: str) -> str:
    """A run name: letters, digits, '.', '_', '-', at most 80 characters, no path parts."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise RunError("invalid run name {name!r}: use letters, digits, '.', '_' and '-' (starting with a letter or "
                       "digit, at most 80 characters)", name=name)
    return name


@dataclass
class Run:
    """A saved run. ``meta`` holds what is needed to rebuild the model and describe it."""
    name: str
    path: Path
    config: RunConfig
    meta: dict[str, Any]
    history: dict[str, list[float]]
    metrics: dict[str, Any] = field(default_factory=dict)
    read_only: bool = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["image_shape"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names", []))

    @property
    def final_val_loss(self) -> float | None:
        v = self.history.get("val_loss") or []
        return v[-1] if v else None

    @property
    def trained_on(self) -> str:
        """Where the run trained: "cpu", "cuda", or "2 x cpu (gloo)" for a torchrun launch."""
        dist = self.meta.get("distributed")
        device = self.meta.get("device") or "?"
        return f"{dist['world_size']} x {device} ({dist['backend']})" if dist else device

    @property
    def resumed_from(self) -> dict | None:
        """Where a continued run came from: {"run", "epochs" (done there), "fresh_optimizer",
        "stopped_mid_epoch"}; None for a run trained in one go."""
        return self.meta.get("resumed_from")

    @property
    def has_checkpoint(self) -> bool:
        """Whether the run was saved with its training state (see :meth:`checkpoint`), without reading it."""
        return all((self.path / f).is_file() for f in ckpt.FILES)

    def checkpoint(self) -> Checkpoint | None:
        """What continues training where this run ended (optimisers, random streams, counters); None for a
        run saved without it (before AE Lab kept it, the examples, greedy training, a diverged run)."""
        return Checkpoint.load(self.path, self.name)

    @property
    def epochs_done(self) -> float:
        e = self.history.get("epoch") or []
        return e[-1] if e else 0.0

    @property
    def family(self) -> str:
        return self.config.model.family

    def can(self, capability: str) -> bool:
        """Whether the run's model can ``reconstruct``, ``encode`` or ``sample``, known from its config alone
        (a damaged weights file does not stop a page from saying what the run is)."""
        if capability == "sample":
            return self.config.model.generative
        return getattr(MODEL_CLASSES[self.family], f"can_{capability}")

    @property
    def fingerprint(self) -> tuple[str, float]:
        """(directory, weights file time): what results computed from this run depend on (cache keys)."""
        return str(self.path), (self.path / "model.safetensors").stat().st_mtime

    def load_model(self, device: str | torch.device = "cpu") -> Model:
        """Rebuild the model from config.json (after checking its size) and load its safetensors weights (strict)."""
        n_classes = max(2, len(self.class_names))
        check_size(self.config.model, self.image_shape, self.config.train.batch_size, n_classes)
        model = build_model(self.config.model, self.image_shape, n_classes=n_classes)
        try:
            state = load_file(str(self.path / "model.safetensors"), device=str(device))
            model.load_state_dict(state, strict=True)
        except Exception as e:
            raise RunError("run {name!r}: cannot load model.safetensors ({e})", name=self.name, e=e) from None
        return model.to(device).eval()

    def timeline(self) -> dict[str, np.ndarray]:
        """What was recorded before training and after every epoch; {} for runs without it.

        "frames": (epochs + 1, n, H, W) floats in [0, 1], the live preview; "inputs": (n, H, W), the
        images reconstructed (autoencoders); "codes": (epochs + 1, n, latent) float32, the codes of fixed
        validation images, and "code_labels": (n,) their labels (models with an encoder)."""
        path = self.path / TIMELINE
        if not path.is_file():
            return {}
        try:
            return {k: v.numpy() / np.float32(255) if k in TIMELINE_IMAGES else
                    v.float().numpy() if v.is_floating_point() else v.numpy()
                    for k, v in load_file(str(path)).items()}
        except Exception as e:
            raise RunError("run {name!r}: {timeline} is damaged ({e})", name=self.name, timeline=TIMELINE,
                           e=e) from None

    def archive(self) -> bytes:
        """A zip of the run's files (config, history, metrics, weights) under a folder named after it."""
        return _zip(self.path, self.name, FILES + (TIMELINE, *ckpt.FILES))

    def save_metrics(self, metrics: dict[str, Any]) -> None:
        """Merge ``metrics`` into metrics.json (atomic replace)."""
        if self.read_only:
            raise RunError("run {name!r} is read-only", name=self.name)
        self.metrics = {**self.metrics, **metrics}
        write_json_atomic(self.path / "metrics.json", self.metrics)


@dataclass
class Study:
    """A saved pretraining study: its config, ``meta`` (data set, encoders, status, timing) and ``fits``, one
    record per trained classifier: encoder (run name, None for pixels), variant, labels, seed, accuracy,
    steps, seconds and its training-loss curve."""
    name: str
    path: Path
    config: StudyConfig
    meta: dict[str, Any]
    fits: list[dict[str, Any]]
    read_only: bool = False
    family = "study"

    def can(self, capability: str) -> bool:
        """A study has no model: it reconstructs, encodes and samples nothing."""
        return False

    def archive(self) -> bytes:
        """A zip of study.json and results.json under a folder named after the study."""
        return _zip(self.path, self.name, STUDY_FILES)


@dataclass
class Comparison:
    """A saved PCA-vs-autoencoders comparison (:func:`aelab.dimred.compare`): ``meta`` (data set, code sizes,
    timing) and ``rows``, one per (k, model): k, model (pca | linear | nonlinear), run (the autoencoder's run
    name, None for PCA), test_mse, and for the linear AE its largest principal angle to PCA (max_angle_deg)."""
    name: str
    path: Path
    meta: dict[str, Any]
    rows: list[dict[str, Any]]


class RunStore:
    """Runs under ``root`` (``$AELAB_RUNS_DIR`` or ``runs/`` by default)."""

    def __init__(self, root: str | Path | None = None, read_only: bool = False):
        self.root = Path(root) if root is not None else default_runs_dir()
        self.read_only = read_only

    # ---------------------------------------------------------------------------- write
    def save(self, model: torch.nn.Module, config: RunConfig, history: dict, meta: dict,
             metrics: dict | None = None, name: str | None = None,
             timeline: dict[str, np.ndarray] | None = None, checkpoint: Checkpoint | None = None) -> Run:
        """Write a new run atomically and return it. ``name`` defaults to preset-data-timestamp.

        ``timeline``: see :meth:`Run.timeline`; images (float arrays in [0, 1]) are stored as uint8.
        ``checkpoint``: what continues its training (:meth:`Run.checkpoint`).
        """
        meta = {"format": FORMAT, "created": dt.datetime.now().isoformat(timespec="seconds"), **meta}

        def write(tmp: Path) -> None:
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"))
            if timeline:
                save_file({k: torch.from_numpy(np.round(np.clip(v, 0, 1) * 255).astype(np.uint8)
                                               if k in TIMELINE_IMAGES else np.ascontiguousarray(v))
                           for k, v in timeline.items()}, str(tmp / TIMELINE))
            if checkpoint is not None:
                checkpoint.save(tmp)
            _write_json(tmp / "history.json", history)
            _write_json(tmp / "metrics.json", metrics or {})
            _write_json(tmp / "config.json", {"meta": meta, "config": config.to_dict()})  # last: marks complete

        name = self._write_new(check_name(name) if name else self.unique_name(config), write)
        return self.open(name)

    def save_study(self, config: StudyConfig, meta: dict, fits: list[dict], name: str | None = None) -> Study:
        """Write a new study atomically and return it; ``name`` defaults to pretrain-data-timestamp."""
        meta = {"format": FORMAT, "created": dt.datetime.now().isoformat(timespec="seconds"), "family": "study",
                **meta}

        def write(tmp: Path) -> None:
            _write_json(tmp / "results.json", {"fits": fits})
            _write_json(tmp / "study.json", {"meta": meta, "config": config.to_dict()})   # last: marks complete

        name = self._write_new(check_name(name) if name else
                               self._unique(f"pretrain-{_data_stem(meta.get('data', 'data'))}"), write)
        return self.open_study(name)

    def save_comparison(self, name: str, meta: dict, rows: list[dict]) -> Comparison:
        """Write a new comparison ``name`` atomically and return it."""
        meta = {"format": FORMAT, "created": dt.datetime.now().isoformat(timespec="seconds"),
                "family": "comparison", **meta}
        self._write_new(check_name(name), lambda tmp: _write_json(tmp / COMPARISON_FILE, {"meta": meta, "rows": rows}))
        return self.open_comparison(name)

    def unique_comparison_name(self, data: str) -> str:
        return self._unique(f"pca-{_data_stem(data)}")

    def _write_new(self, name: str, write) -> str:
        """Create directory ``name`` atomically: ``write(tmp)`` fills a hidden temporary directory, which is
        then renamed into place (removed if anything fails). Returns ``name``."""
        self._writable()
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / name
        if final.exists():
            raise RunError("a run named {name!r} exists already in {root}; choose another name",
                           name=name, root=self.root)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.root))
        try:
            tmp.chmod(0o755)   # mkdtemp makes it private; a run is as readable as any other directory
            write(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return name

    def unique_name(self, config: RunConfig) -> str:
        return self._unique(f"{config.preset or config.model.arch}-{_data_stem(config.data.name)}")

    def unique_continuation(self, name: str) -> str:
        """A free name for a run that continues run ``name``: ``name-more-timestamp``."""
        return self._unique(f"{name[:50]}-more")

    def _unique(self, prefix: str) -> str:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = re.sub(r"[^A-Za-z0-9._-]", "-", f"{prefix}-{stamp}")
        base = base.strip("-.")[:72] or "run"
        name, i = base, 2
        while (self.root / name).exists():
            name, i = f"{base}-{i}", i + 1
        return name

    def rename(self, old: str, new: str) -> Run:
        self._writable()
        src, dst = self._dir(old), self.root / check_name(new)
        if not src.is_dir():
            raise RunError("no run named {old!r}", old=old)
        if dst.exists():
            raise RunError("a run named {new!r} exists already", new=new)
        os.rename(src, dst)
        return self.open(new)

    def delete(self, name: str) -> None:
        self._writable()
        path = self._dir(name)
        if not path.is_dir():
            raise RunError("no run named {name!r}", name=name)
        shutil.rmtree(path)

    # ----------------------------------------------------------------------------- read
    def open(self, name: str) -> Run:
        """Open run ``name``; a missing or damaged file gives a RunError naming it."""
        path = self._dir(name)
        if not path.is_dir():
            raise RunError("no run named {name!r} in {root}", name=name, root=self.root)
        if (path / "study.json").is_file():
            raise RunError("{name!r} is a pretraining study, not a model run", name=name)
        for f in FILES:
            if not (path / f).is_file():
                raise RunError("run {name!r} is incomplete: {f} is missing", name=name, f=f)
        doc = _read_json(path / "config.json", name)
        try:
            meta, config = doc["meta"], RunConfig.from_dict(doc["config"])
            config.validate()
            _check_meta(meta)
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise RunError("run {name!r}: config.json is not an AE Lab run config ({e})", name=name, e=e) from None
        history = _read_json(path / "history.json", name)
        metrics = _read_json(path / "metrics.json", name)
        try:
            _check_history(history)
            _check_metrics(metrics)
        except (TypeError, ValueError) as e:
            raise RunError("run {name!r}: {e}", name=name, e=e) from None
        return Run(name, path, config, meta, history, metrics, read_only=self.read_only)

    def open_study(self, name: str) -> Study:
        """Open study ``name``; a missing or damaged file gives a RunError naming it."""
        path = self._dir(name)
        if not (path / "study.json").is_file():
            raise RunError("no pretraining study named {name!r} in {root}", name=name, root=self.root)
        doc = _read_json(path / "study.json", name)
        results = _read_json(path / "results.json", name) if (path / "results.json").is_file() else None
        try:
            meta, config = doc["meta"], StudyConfig.from_dict(doc["config"]).validate()
            _check_study(meta, results)
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise RunError("study {name!r}: {e}", name=name, e=e) from None
        return Study(name, path, config, meta, results["fits"], read_only=self.read_only)

    def open_comparison(self, name: str) -> Comparison:
        """Open comparison ``name``; a missing or damaged file gives a RunError naming it."""
        path = self._dir(name)
        if not (path / COMPARISON_FILE).is_file():
            raise RunError("no comparison named {name!r} in {root}", name=name, root=self.root)
        doc = _read_json(path / COMPARISON_FILE, name)
        try:
            _check_comparison(doc)
        except (TypeError, ValueError) as e:
            raise RunError("comparison {name!r}: {e}", name=name, e=e) from None
        return Comparison(name, path, doc["meta"], doc["rows"])

    def scan(self) -> tuple[list[Run], dict[str, str]]:
        """All readable runs (newest first) and, separately, {name: error} for damaged ones. A writable
        store also removes what an interrupted save left (``.tmp-*`` folders idle for an hour). Studies
        and comparisons are not runs: see :meth:`scan_studies` and :meth:`scan_comparisons`."""
        return self._scan(self.open, None)

    def scan_studies(self) -> tuple[list[Study], dict[str, str]]:
        """All readable pretraining studies (newest first) and {name: error} for damaged ones."""
        return self._scan(self.open_study, "study.json")

    def scan_comparisons(self) -> tuple[list[Comparison], dict[str, str]]:
        """All readable PCA-vs-autoencoders comparisons (newest first) and {name: error} for damaged ones."""
        return self._scan(self.open_comparison, COMPARISON_FILE)

    def _scan(self, opener, marker: str | None) -> tuple[list, dict[str, str]]:
        """What ``opener`` reads of the folders holding ``marker`` (None: those holding no marker: runs)."""
        found, problems = [], {}
        if not self.root.is_dir():
            return found, problems
        if not self.read_only:
            remove_idle(self.root, STALE_TMP_S, prefix=".tmp-")
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            held = [m for m in MARKERS if (path / m).is_file()]
            if held != ([marker] if marker else []):
                continue
            try:
                found.append(opener(path.name))
            except RunError as e:
                problems[path.name] = str(e)
        found.sort(key=lambda r: r.meta.get("created", ""), reverse=True)
        return found, problems

    def names(self) -> list[str]:
        return [r.name for r in self.scan()[0]]

    def _dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def _writable(self) -> None:
        if self.read_only:
            raise RunError("the runs in {root} are read-only", root=self.root)


def find_classifier(dataset_name: str, runs: Iterable[Run]) -> Run | None:
    """The first finished classifier run trained on ``dataset_name`` among ``runs`` (give them newest first):
    the feature extractor of the quality measure."""
    return next((run for run in runs if run.family == "classifier" and run.config.data.name == dataset_name
                 and run.meta.get("status") == "finished"), None)


def stored_runs(runs_dir: str | Path | None = None) -> Iterator[Run]:
    """The user's runs, then the shipped examples, each newest first (where classifiers are looked for)."""
    for store in (RunStore(runs_dir if runs_dir is not None else default_runs_dir()),
                  RunStore(examples_dir(), read_only=True)):
        yield from store.scan()[0]


def cleanup_sessions(sessions_root: str | Path, max_age_s: float) -> int:
    """Delete per-visitor run directories (hosted mode) not modified for ``max_age_s``; returns how many."""
    return remove_idle(sessions_root, max_age_s)


def find_run(name: str, runs_dir: str | Path | None = None) -> Run:
    """Run ``name`` from the runs directory, else from the shipped examples (``stacked-fashion``...)."""
    try:
        return RunStore(runs_dir).open(name)
    except RunError as mine:
        try:
            return RunStore(examples_dir(), read_only=True).open(name)
        except RunError:
            raise mine from None


def _data_stem(name: str) -> str:
    return Path(name).stem if name.lower().endswith((".npz", ".zip")) else name


def _zip(path: Path, name: str, files: tuple[str, ...]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for file in files:
            if (path / file).is_file():
                z.write(path / file, f"{name}/{file}")
    return buf.getvalue()


# -------------------------------------------------------------------------- what a run folder holds
def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_meta(meta: Any) -> None:
    """The fields of config.json's ``meta`` that pages and the loader use, with their types and ranges."""
    if not isinstance(meta, dict):
        raise TypeError("meta must be an object")
    shape = meta["image_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                 for v in shape)
            and 1 <= shape[0] <= 4 and all(1 <= v <= MAX_IMAGE_SIDE for v in shape[1:])):
        raise ValueError(f"meta.image_shape must be [channels 1-4, height, width up to {MAX_IMAGE_SIDE}], "
                         f"got {str(shape)[:60]}")
    for key, kind in (("created", str), ("status", str), ("data_source", str), ("device", str), ("error", str)):
        if key in meta and not isinstance(meta[key], kind):
            raise TypeError(f"meta.{key} must be a {kind.__name__}, got {str(meta[key])[:40]!r}")
    if meta.get("status", "finished") not in STATUSES:
        raise ValueError(f"meta.status must be one of {', '.join(STATUSES)}")
    names = meta.get("class_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError("meta.class_names must be a list of strings")
    for key in ("seconds_per_epoch", "n_params"):
        if meta.get(key) is not None and not _number(meta[key]):
            raise TypeError(f"meta.{key} must be a number")
    dist = meta.get("distributed")
    if dist is not None and not (isinstance(dist, dict) and isinstance(dist.get("world_size"), int)
                                 and isinstance(dist.get("backend"), str) and isinstance(dist.get("devices"), list)
                                 and all(isinstance(d, str) for d in dist["devices"])):
        raise TypeError("meta.distributed must hold world_size (int), backend (str) and devices (strings)")
    resumed = meta.get("resumed_from")
    if resumed is not None and not (isinstance(resumed, dict) and isinstance(resumed.get("run"), str)
                                    and _number(resumed.get("epochs"))
                                    and isinstance(resumed.get("fresh_optimizer"), bool)
                                    and isinstance(resumed.get("stopped_mid_epoch"), bool)):
        raise TypeError("meta.resumed_from must hold run (str), epochs (number), fresh_optimizer and "
                        "stopped_mid_epoch (booleans)")


def _check_history(history: Any) -> None:
    """history.json: {name: [numbers]} (NaN allowed, as the trainer records a stopped epoch)."""
    if not isinstance(history, dict):
        raise TypeError("history.json must hold a JSON object")
    for key, values in history.items():
        if not isinstance(values, list) or not all(_number(v) for v in values):
            raise TypeError(f"history.json: {str(key)[:40]!r} must be a list of numbers")


def _check_metrics(metrics: Any) -> None:
    """metrics.json: the sections pages read, each with the types they format."""
    if not isinstance(metrics, dict):
        raise TypeError("metrics.json must hold a JSON object")

    def numbers(obj, where: str) -> None:
        if not isinstance(obj, dict) or not all(_number(v) for v in obj.values()):
            raise TypeError(f"metrics.json: {where} must map names to numbers")

    if "test" in metrics:
        numbers(metrics["test"], "test")
    for name, values in (metrics.get("per_class") or {}).items():
        numbers(values, f"per_class.{str(name)[:40]}")
    probes = metrics.get("probes")
    if probes is not None:
        if not isinstance(probes, dict):
            raise TypeError("metrics.json: probes must be an object")
        numbers(probes.get("codes", {}), "probes.codes")
        numbers(probes.get("pixels", {}), "probes.pixels")
    quality = metrics.get("quality")
    if quality is not None:
        if not isinstance(quality, dict) or not all(_number(quality.get(k)) for k in ("fid", "reference_fid",
                                                                                       "classes_covered")):
            raise TypeError("metrics.json: quality must hold numbers fid, reference_fid and classes_covered")
        for key in ("class_shares", "test_shares"):
            if not isinstance(quality.get(key), list) or not all(_number(v) for v in quality[key]):
                raise TypeError(f"metrics.json: quality.{key} must be a list of numbers")


def _check_study(meta: Any, results: Any) -> None:
    """study.json's meta and results.json: the fields the Pretraining page and the summary read."""
    if not isinstance(meta, dict) or meta.get("family") != "study":
        raise TypeError("study.json: meta must be an object with family 'study'")
    if not isinstance(meta.get("encoders"), list) or not all(isinstance(e, str) for e in meta["encoders"]):
        raise TypeError("study.json: meta.encoders must be a list of run names")
    for key in ("data", "created", "status"):
        if not isinstance(meta.get(key), str):
            raise TypeError(f"study.json: meta.{key} must be a string")
    if not isinstance(meta.get("class_names", []), list):
        raise TypeError("study.json: meta.class_names must be a list")
    if not isinstance(results, dict) or not isinstance(results.get("fits"), list):
        raise TypeError("results.json is missing or holds no list of fits")
    for i, fit in enumerate(results["fits"]):
        where = f"results.json: fit {i}"
        if not isinstance(fit, dict) or fit.get("variant") not in STUDY_VARIANTS:
            raise TypeError(f"{where}: variant must be one of {', '.join(STUDY_VARIANTS)}")
        if not (fit.get("encoder") is None or isinstance(fit["encoder"], str)):
            raise TypeError(f"{where}: encoder must be a run name or null")
        for key in ("labels", "seed"):
            if not isinstance(fit.get(key), int) or isinstance(fit[key], bool):
                raise TypeError(f"{where}: {key} must be an integer")
        if not (_number(fit.get("accuracy")) and 0 <= fit["accuracy"] <= 1):
            raise ValueError(f"{where}: accuracy must be a number in [0, 1]")
        if not isinstance(fit.get("loss", []), list) or not all(_number(v) for v in fit.get("loss", [])):
            raise TypeError(f"{where}: loss must be a list of numbers")


def _check_comparison(doc: Any) -> None:
    """comparison.json: the fields the Latent space page and the CLI read."""
    meta = doc.get("meta") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or meta.get("family") != "comparison" or not isinstance(meta.get("data"), str):
        raise TypeError(f"{COMPARISON_FILE}: meta must be an object with family 'comparison' and a data set name")
    if not isinstance(doc.get("rows"), list):
        raise TypeError(f"{COMPARISON_FILE}: rows must be a list")
    for i, row in enumerate(doc["rows"]):
        where = f"{COMPARISON_FILE}: row {i}"
        if not isinstance(row, dict) or row.get("model") not in COMPARISON_MODELS:
            raise TypeError(f"{where}: model must be one of {', '.join(COMPARISON_MODELS)}")
        if not isinstance(row.get("k"), int) or isinstance(row["k"], bool) or row["k"] < 1:
            raise TypeError(f"{where}: k must be a positive integer")
        for key in ("test_mse", "max_angle_deg"):
            if key in row and not (_number(row[key]) and row[key] >= 0):
                raise ValueError(f"{where}: {key} must be a number >= 0")
        if "test_mse" not in row:
            raise ValueError(f"{where}: test_mse is missing")


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, allow_nan=True))


def _read_json(path: Path, run: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError("run {run!r}: {name} is damaged ({e})", run=run, name=path.name, e=e) from None
