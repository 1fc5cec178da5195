"""Command line: ``python -m aelab {train,eval,pretrain,compare,runs,data}``.

Every config field is a flag of ``train`` (``--lr``, ``--hidden 100,30``, ``--tied``/``--no-tied`` ...),
applied on top of ``--preset``; a model flag sets the field of the model's family (``--latent`` is a GAN's
codings size). The config is validated once, here. Usage errors exit with code 2, other failures with 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading

from . import data as data_mod
from . import runtime
from .config import ALIASES, COMPARE_KS, RunConfig, StudyConfig, format_value, setting_names, with_overrides
from .distributed import launched_by_torchrun, setup, teardown
from .errors import ConfigError, DataError, RunError, TrainingDiverged
from .presets import PRESETS, preset
from .runs import RunStore, find_classifier, find_run, stored_runs

FLAG_NAMES = {("data", "name"): "data"}   # every other flag is the field name with dashes
# shown on each epoch's line
TERMS_SHOWN = ("val_recon", "val_rounded_acc", "val_kl", "val_d_loss", "val_g_loss", "acc_real", "acc_fake", "val_acc",
               "beta", "active_units")


def _flag(section: str, name: str) -> str:
    return "--" + FLAG_NAMES.get((section, name), name).replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aelab", description="AE Lab: train and inspect autoencoders.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model and save it as a run",
                       description="Train a preset or a custom model. Flags override the preset's values.")
    t.add_argument("--preset", choices=list(PRESETS), help="start from one of the book's recipes")
    t.add_argument("--name", help="run name (default: preset-data-timestamp)")
    t.add_argument("--runs-dir", help="where runs are stored (default $AELAB_RUNS_DIR or runs/)")
    t.add_argument("--json", action="store_true", help="print one JSON object at the end, nothing else on stdout")
    t.add_argument("--no-eval", action="store_true", help="skip test-set metrics and probes after training")
    t.add_argument("--resume", metavar="RUN",
                   help="continue a saved run (yours, or an example) for --epochs MORE epochs, as a new run that "
                        "names it; its settings are kept, so no other setting flag is allowed")
    t.add_argument("--fresh-optimizer", action="store_true",
                   help="with --resume: continue a run saved without its optimiser state (an example, an older "
                        "run) with a fresh optimiser")
    for section, name, hint, default, families in setting_names():
        owners = "/".join(families) if section == "model" and len(families) < 3 else section
        also = [f"a {fam}'s {to}" for fam, names in ALIASES.items() for alias, to in names.items() if alias == name]
        shown = f"default {format_value(default)}" + (", comma-separated" if isinstance(default, tuple) else "")
        text = f"{owners} setting ({shown})" + (f"; also {', '.join(also)}" if also else "")
        if hint is bool:
            t.add_argument(_flag(section, name), dest=f"{section}.{name}", action=argparse.BooleanOptionalAction,
                           default=None, help=text)
        else:
            t.add_argument(_flag(section, name), dest=f"{section}.{name}", default=None, metavar="VALUE", help=text)

    e = sub.add_parser("eval", help="test-set metrics and probes of a saved run")
    e.add_argument("run")
    e.add_argument("--runs-dir")
    e.add_argument("--json", action="store_true")
    e.add_argument("--no-probes", action="store_true", help="skip the kNN / logistic-regression probes")

    t.set_defaults(func=cmd_train, subparser=t)
    e.set_defaults(func=cmd_eval, subparser=e)
    study = StudyConfig()
    s = sub.add_parser(
        "pretrain", help="unsupervised pretraining study: does an encoder help a classifier with few labels?",
        description="For each label budget and seed, train a classifier on that many labelled training images "
                    "(balanced over the classes) four ways and score it on the test set: scratch (the encoder's "
                    "architecture, fresh weights, plus the head), frozen (the pretrained encoder, frozen, plus the "
                    "head), finetuned (both trained, the encoder at --encoder-lr) and pixels (scikit-learn logistic "
                    "regression on raw pixels). The networks share the head, the optimiser (Adam, cross-entropy), "
                    "the updates (--epochs passes over the budget, at least --min-steps) and the subsets; no early "
                    "stopping. The study is saved in the runs directory.")
    s.add_argument("--encoder", action="append", required=True, metavar="RUN",
                   help="an autoencoder run (your runs directory first, then the examples, e.g. stacked-fashion); "
                        "repeat to compare encoders of one data set")
    s.add_argument("--labels", default=",".join(map(str, study.labels)),
                   help=f"label budgets, comma-separated (default {','.join(map(str, study.labels))})")
    s.add_argument("--seeds", type=int, default=study.seeds, help=f"how many seeds: --seed, --seed+1, ... "
                                                                  f"(default {study.seeds})")
    s.add_argument("--seed", type=int, default=study.seed, help=f"the first seed (default {study.seed})")
    s.add_argument("--head", choices=["linear", "mlp"], default=study.head,
                   help=f"linear, or mlp: one hidden layer of --hidden ReLU units (default {study.head})")
    s.add_argument("--hidden", type=int, default=study.hidden, help=f"the mlp head's width (default {study.hidden})")
    s.add_argument("--epochs", type=int, default=study.epochs,
                   help=f"passes over each budget's labelled images (default {study.epochs})")
    s.add_argument("--min-steps", type=int, default=study.min_steps,
                   help=f"at least this many updates per classifier (default {study.min_steps})")
    s.add_argument("--batch-size", type=int, default=study.batch_size,
                   help=f"or the whole budget if smaller (default {study.batch_size})")
    s.add_argument("--lr", type=float, default=study.lr,
                   help=f"Adam learning rate of the head, and of every layer from scratch (default {study.lr:g})")
    s.add_argument("--encoder-lr", type=float, default=study.encoder_lr,
                   help=f"Adam learning rate of the pretrained encoder when fine-tuning (default {study.encoder_lr:g})")
    s.add_argument("--name", help="study name (default pretrain-data-timestamp)")
    s.add_argument("--runs-dir")
    s.add_argument("--json", action="store_true", help="print one JSON object at the end, nothing else on stdout")
    s.set_defaults(func=cmd_pretrain, subparser=s)

    c = sub.add_parser(
        "compare", help="dimensionality reduction: PCA vs linear vs nonlinear autoencoders, MSE against code size",
        description="For each code size k, train the linear preset (no activations, linear output, MSE) and the "
                    "stacked architecture with that code size, save both as runs, and score them and PCA "
                    "(scikit-learn, fitted on the same training images) by test-set reconstruction MSE; for the "
                    "linear AE also the largest principal angle between its decoder's subspace and PCA's. "
                    "--book-3d runs the book's 3-D demo instead (its curved point cloud to 2-D, linear AE and PCA).")
    c.add_argument("--data", default="fashion-mnist")
    c.add_argument("--ks", default=",".join(map(str, COMPARE_KS)),
                   help=f"code sizes, comma-separated (default {','.join(map(str, COMPARE_KS))})")
    c.add_argument("--epochs", type=int, help="epochs of every autoencoder (default: each preset's, 10)")
    c.add_argument("--seed", type=int, default=42)
    c.add_argument("--book-3d", action="store_true", help="the book's 3-D demo: nothing is trained on images")
    c.add_argument("--name", help="comparison name (default pca-data-timestamp); runs are NAME-linear-kK, ...")
    c.add_argument("--runs-dir")
    c.add_argument("--json", action="store_true", help="print one JSON object at the end, nothing else on stdout")
    c.set_defaults(func=cmd_compare, subparser=c)

    r = sub.add_parser("runs", help="list saved runs")
    r.add_argument("--runs-dir")
    r.add_argument("--json", action="store_true")

    d = sub.add_parser("data", help="which data sets are available and from where")
    d.add_argument("--data-dir")
    d.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_runs, subparser=r)
    d.set_defaults(func=cmd_data, subparser=d)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The preset (or defaults) with every flag that was given applied; validated (the CLI's one check)."""
    overrides = {k: v for k, v in vars(args).items() if "." in k and v is not None}
    base = preset(args.preset, overrides.get("data.name", "fashion-mnist")) if args.preset else RunConfig()
    return with_overrides(base, overrides).validate()


class _Progress:
    """tqdm bar per epoch on stderr, and a line per epoch with the validation loss."""

    def __init__(self):
        from tqdm import tqdm

        self._tqdm, self.bar = tqdm, None

    def on_train_begin(self, state): ...

    def on_batch_end(self, state):
        if self.bar is None:
            self.bar = self._tqdm(total=state.batches, desc=f"epoch {state.epoch}/{state.epochs}", unit="batch",
                                  file=sys.stderr, leave=False)
        self.bar.update(1)
        if state.batch % 50 == 0 or state.batch == state.batches:
            self.bar.set_postfix(loss=f"{state.loss:.4f}", refresh=False)

    def on_epoch_end(self, state):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        h = state.history
        terms = "".join(f"  {k} {h[k][-1]:{'g' if k == 'active_units' else '.4f'}}" for k in h
                        if k in TERMS_SHOWN and (k != "val_recon" or "phase" in h))
        phase = f"  phase {h['phase'][-1]:g}" if "phase" in h else ""
        print(f"epoch {h['epoch'][-1]:g}/{state.epochs}{phase}  loss {h['loss'][-1]:.4f}  "
              f"val_loss {h['val_loss'][-1]:.4f}"
              f"{terms}  {h['seconds'][-1]:.1f}s", file=sys.stderr)

    def on_train_end(self, state):
        if self.bar is not None:
            self.bar.close()


def _finite(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def resume_from_args(args: argparse.Namespace, parser):
    """(config, Resume) of ``--resume RUN --epochs N``; a usage error for flags that would change the run."""
    from .experiment import plan_resume

    overrides = {k: v for k, v in vars(args).items() if "." in k and v is not None}
    others = (["--preset"] if args.preset else []) + sorted(_flag(*k.split(".")) for k in overrides
                                                             if k != "train.epochs")
    if others:
        parser.error(f"--resume keeps the run's settings: drop {', '.join(others)}")
    if "train.epochs" not in overrides:
        parser.error("--resume needs --epochs N, the number of epochs to add")
    try:
        more = int(overrides["train.epochs"])
    except ValueError:
        parser.error(f"--epochs must be a whole number, got {overrides['train.epochs']!r}")
    return plan_resume(find_run(args.resume, args.runs_dir), more, args.fresh_optimizer)


def cmd_train(args, parser) -> int:
    from .experiment import train_validated

    resume = None
    try:
        if args.resume:
            cfg, resume = resume_from_args(args, parser)
        else:
            if args.fresh_optimizer:
                parser.error("--fresh-optimizer goes with --resume")
            cfg = config_from_args(args)
    except ConfigError as e:
        parser.error(str(e))
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if resume is not None:
        r, c = resume.run, resume.checkpoint
        print(f"continuing run {r.name} after {r.epochs_done:g} epochs"
              + (" (stopped mid-epoch: training goes on with a new epoch)" if c and c.stopped_mid_epoch else "")
              + (" with a fresh optimiser" if c is None else "") + f", up to {cfg.train.epochs} epochs",
              file=sys.stderr)
    stop = threading.Event()
    distributed = launched_by_torchrun()

    def on_sigint(signum, frame):
        # first Ctrl-C: finish the batch and save; second: abort. Under torchrun the launcher passes Ctrl-C on
        # once and kills what has not ended 30 s later, so every signal only asks to stop.
        if not stop.is_set():
            print("\nstopping after this batch" + ("" if distributed else " (Ctrl-C again to abort)") + "...",
                  file=sys.stderr)
        stop.set()
        if not distributed:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        dist = setup(cfg.train.device) if distributed else None
        exp = train_validated(cfg, runs_dir=args.runs_dir, name=args.name, callbacks=[_Progress()], stop_event=stop,
                              evaluate=not args.no_eval, dist=dist, resume=resume)
    except ConfigError as e:
        parser.error(str(e))
    except (DataError, RunError, TrainingDiverged, RuntimeError) as e:
        rank = f"rank {os.environ['RANK']}: " if distributed else ""
        print(f"error: {rank}{e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
        teardown()
    if exp is None:   # a rank other than 0 of a torchrun launch: rank 0 reports and writes the run
        return 0
    run = exp.run
    summary = {"run": run.name, "path": str(run.path), "status": exp.fit.status, "epochs": run.epochs_done,
               "val_loss": _finite(run.final_val_loss), "seconds_per_epoch": _finite(exp.fit.seconds_per_epoch),
               "device": exp.fit.device, "metrics": run.metrics.get("test", {}),
               **({"distributed": exp.fit.distributed} if exp.fit.distributed else {}),
               **({"resumed_from": run.resumed_from} if run.resumed_from else {})}
    if "quality" in run.metrics:
        summary["quality"] = run.metrics["quality"]
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"saved run {run.name} ({exp.fit.status}) in {run.path}: val_loss {summary['val_loss']}, "
              f"{summary['seconds_per_epoch']} s/epoch")
        _print_quality(run.metrics)
    return 0


def _print_quality(metrics: dict) -> None:
    q = metrics.get("quality")
    if q:
        print(f"  quality ({q['n_samples']} samples, classifier {q['classifier']}): FID(domain) {q['fid']:.2f} "
              f"(real images: {q['reference_fid']:.2f}), {q['classes_covered']}/{len(q['class_shares'])} classes "
              f"covered, class KL {q['class_kl']:.3f} nats")


def cmd_eval(args, parser) -> int:
    from .experiment import evaluate_run

    try:
        run = RunStore(args.runs_dir).open(args.run)
        dataset = data_mod.load_dataset(run.config.data)
        model = run.load_model()
        classifier = find_classifier(dataset.name, stored_runs(args.runs_dir)) if model.can_sample else None
        if model.can_sample and classifier is None:
            print(f"note: no classifier run for {dataset.name}, so no quality measure; train one with "
                  f"python -m aelab train --preset classifier --data {dataset.name}", file=sys.stderr)
        metrics = evaluate_run(model, dataset, probes=not args.no_probes, classifier=classifier)
        run.save_metrics(metrics)
    except (RunError, DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"run": run.name, **metrics}))
    else:
        print(f"run {run.name} on the {run.config.data.name} test set")
        for k, v in metrics.get("test", {}).items():
            print(f"  {k:6s} {v:.4f}")
        _print_quality(metrics)
        c = metrics.get("codes")
        if c:
            print(f"  codes of {c['images']:,} test images: mean activation {c['mean_activation']:.4f}"
                  + (f", {c['active_units']} of {c['latent']} latent dimensions active (KL > 0.01 nats)"
                     if "active_units" in c else "")
                  + (f", {c['binary_share']:.1%} of activations within 0.1 of a bit, {c['distinct_hashes']:,} "
                     "distinct hashes" if "binary_share" in c else ""))
        if "probes" in metrics:
            p = metrics["probes"]
            for probe in ("knn", "logreg"):
                print(f"  {probe} accuracy: codes {p['codes'][probe]:.4f}, raw pixels {p['pixels'][probe]:.4f}")
    return 0


def cmd_pretrain(args, parser) -> int:
    from .pretrain import LABELS, run_study, summarize

    try:
        cfg = StudyConfig.from_dict({"labels": args.labels, "seeds": args.seeds, "seed": args.seed, "head": args.head,
                                     "hidden": args.hidden, "epochs": args.epochs, "min_steps": args.min_steps,
                                     "batch_size": args.batch_size, "lr": args.lr,
                                     "encoder_lr": args.encoder_lr}).validate()
    except ConfigError as e:
        parser.error(str(e))
    try:
        encoders = [find_run(name, args.runs_dir) for name in args.encoder]

        def progress(p) -> None:
            f = p.fit
            print(f"[{p.done}/{p.total}] {f['labels']} labels, seed {f['seed']}, {LABELS[f['variant']]}"
                  f"{' (' + f['encoder'] + ')' if f['encoder'] and len(encoders) > 1 else ''}: "
                  f"accuracy {f['accuracy']:.4f}", file=sys.stderr)

        study = run_study(encoders, cfg, runs_dir=args.runs_dir, name=args.name, progress=progress)
    except (RunError, DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows = summarize(study.fits)
    if args.json:
        print(json.dumps({"run": study.name, "data": study.meta["data"], "encoders": study.meta["encoders"],
                          "seconds": study.meta["seconds"], "config": study.config.to_dict(), "results": rows}))
        return 0
    print(f"study {study.name}: test accuracy on {study.meta['n_test']:,} {study.meta['data']} test images, "
          f"mean ± sd over {cfg.seeds} seed(s), {study.meta['seconds']:.0f} s")
    for row in rows:
        who = LABELS[row["variant"]] + (f" ({row['encoder']})" if row["encoder"] else "")
        print(f"  {row['labels']:>6,} labels  {who:50s} {row['mean']:.4f} ± {row['std']:.4f}")
    return 0


def cmd_compare(args, parser) -> int:
    from .dimred import book_3d_demo, compare, table

    if args.book_3d:
        demo = book_3d_demo(args.seed)
        out = {"ae_mse": demo.ae_mse, "pca_mse": demo.pca_mse, "max_angle_deg": demo.max_angle_deg,
               "loss": demo.loss}
        print(json.dumps(out) if args.json else
              f"book's 3-D demo ({len(demo.points)} points -> 2-D): linear AE MSE {demo.ae_mse:.5f}, PCA MSE "
              f"{demo.pca_mse:.5f}, largest angle between their planes {demo.max_angle_deg:.2f} degrees")
        return 0
    try:
        ks = tuple(int(k) for k in args.ks.split(",") if k.strip())
    except ValueError:
        parser.error(f"--ks: comma-separated integers, got {args.ks!r}")

    def progress(p) -> None:
        r = p.row
        angle = f", largest angle to PCA {r['max_angle_deg']:.1f} deg" if "max_angle_deg" in r else ""
        print(f"[{p.done}/{p.total}] k={r['k']} {r['model']} AE ({r['run']}): test MSE {r['test_mse']:.5f}{angle}",
              file=sys.stderr)

    try:
        result = compare(args.data, ks, args.epochs, seed=args.seed, runs_dir=args.runs_dir, name=args.name,
                         progress=progress)
    except (RunError, DataError, ConfigError, TrainingDiverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows = table(result)
    if args.json:
        print(json.dumps({"comparison": result.name, **result.meta, "table": rows}))
        return 0
    print(f"comparison {result.name}: test-set reconstruction MSE per pixel on {result.meta['n_test']:,} "
          f"{result.meta['data']} images, {result.meta['seconds']:.0f} s")
    print(f"  {'k':>4}  {'PCA':>9}  {'linear AE':>9}  {'nonlinear':>9}  {'angle (deg)':>11}")
    for r in rows:
        print(f"  {r['k']:>4}  {r['pca']:9.5f}  {r['linear']:9.5f}  {r['nonlinear']:9.5f}  {r['max_angle_deg']:11.1f}")
    return 0


def cmd_runs(args, parser) -> int:
    runs, problems = RunStore(args.runs_dir).scan()
    rows = [{"run": r.name, "preset": r.config.preset, "data": r.config.data.name, "epochs": r.epochs_done,
             "val_loss": _finite(r.final_val_loss), "status": r.meta.get("status"), "created": r.meta.get("created")}
            for r in runs]
    if args.json:
        print(json.dumps({"runs": rows, "problems": problems}))
        return 0
    for row in rows:
        print(f"{row['run']:40s} {row['data']:14s} epochs {row['epochs']:<5g} val_loss {row['val_loss']}")
    for name, err in problems.items():
        print(f"{name}: {err}", file=sys.stderr)
    if not rows and not problems:
        print("no runs yet: python -m aelab train --preset stacked", file=sys.stderr)
    return 0


def cmd_data(args, parser) -> int:
    rows = data_mod.available(args.data_dir)
    default, why = data_mod.default_dataset(args.data_dir)
    if args.json:
        print(json.dumps({"datasets": rows, "default": default, "reason": why}))
        return 0
    for row in rows:
        print(f"{row['name']:14s} {'yes' if row['available'] else 'no ':3s}  {row['source']}")
    print(f"default: {default} ({why})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runtime.configure()
    return args.func(args, args.subparser)
