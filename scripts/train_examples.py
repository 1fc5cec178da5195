"""Train the example runs shipped in examples/ (read-only in the app) on Fashion-MNIST: the domain
classifier of the quality measure (first, so the generative runs get scored), the book's stacked AE,
the denoising AE, the convolutional AE, the VAE, the simple GAN, the DCGAN and the hashing AE; then the
pretraining study of the autoencoders' encoders and the comparison of PCA with linear and nonlinear
autoencoders (only its table is shipped). Run with `make examples` (about 45 minutes on 2 cores, most of it the
DCGAN, the study and the comparison's ten autoencoders)."""
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aelab  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STUDY = "pretrain-fashion"   # the default pretraining study of these encoders:
ENCODERS = ["stacked-fashion", "denoising-fashion", "conv-fashion", "vae-fashion"]
RECIPES = {"classifier-fashion": "classifier", "stacked-fashion": "stacked", "denoising-fashion": "denoising-gaussian",
           "conv-fashion": "conv", "vae-fashion": "vae", "gan-fashion": "gan", "dcgan-fashion": "dcgan",
           "hashing-fashion": "hashing"}
COMPARISON = "pca-fashion"   # PCA vs the linear and the nonlinear AE at the default code sizes


def main(names: list[str]) -> None:
    EXAMPLES.mkdir(exist_ok=True)
    for name, recipe in RECIPES.items():
        if names and name not in names:
            continue
        cfg = aelab.preset(recipe, "fashion-mnist")
        cfg.train.device = "cpu"
        shutil.rmtree(EXAMPLES / name, ignore_errors=True)
        exp = aelab.train(cfg, runs_dir=EXAMPLES, name=name)
        size = (exp.run.path / "model.safetensors").stat().st_size / 1e6
        quality = exp.run.metrics.get("quality")
        print(f"{name}: val loss {exp.run.final_val_loss:.4f}, {exp.fit.seconds_per_epoch:.2f} s/epoch, "
              f"weights {size:.2f} MB, test {exp.run.metrics.get('test')}"
              + (f", FID(domain) {quality['fid']:.2f} (real {quality['reference_fid']:.2f}), "
                 f"{quality['classes_covered']}/10 classes" if quality else ""), flush=True)


def study() -> None:
    """The default pretraining study of the example autoencoders (what the Pretraining page shows first)."""
    store = aelab.RunStore(EXAMPLES)
    shutil.rmtree(EXAMPLES / STUDY, ignore_errors=True)
    result = aelab.run_study([store.open(name) for name in ENCODERS], aelab.StudyConfig(), runs_dir=EXAMPLES,
                             name=STUDY, progress=lambda p: print(f"[{p.done}/{p.total}]", end=" ", flush=True))
    print(f"\n{STUDY}: {result.meta['seconds']:.0f} s")
    for row in aelab.summarize(result.fits):
        print(f"  {row['labels']:>5} {row['variant']:10s} {row['encoder'] or '':20s} "
              f"{row['mean']:.4f} ± {row['std']:.4f}")


def comparison() -> None:
    """The default PCA-vs-autoencoders comparison on Fashion-MNIST: its ten autoencoders are trained in a
    scratch directory, and only the table (comparison.json) is shipped."""
    from aelab import dimred

    with tempfile.TemporaryDirectory() as scratch:
        result = dimred.compare("fashion-mnist", runs_dir=scratch, name=COMPARISON,
                                progress=lambda p: print(f"[{p.done}/{p.total}] {p.row}", flush=True))
        shutil.rmtree(EXAMPLES / COMPARISON, ignore_errors=True)
        shutil.copytree(result.path, EXAMPLES / COMPARISON)
    print(f"{COMPARISON}: {result.meta['seconds']:.0f} s")
    for row in dimred.table(result):
        print(f"  k={row['k']:>3}  PCA {row['pca']:.5f}  linear {row['linear']:.5f}  nonlinear {row['nonlinear']:.5f}"
              f"  angle {row['max_angle_deg']:.1f} deg")


if __name__ == "__main__":
    names = sys.argv[1:]   # the examples to (re)train, the study and/or the comparison; everything by default
    extra = (STUDY, COMPARISON)
    if not names or any(n not in extra for n in names):
        main([n for n in names if n not in extra])
    if not names or STUDY in names:
        study()
    if not names or COMPARISON in names:
        comparison()
