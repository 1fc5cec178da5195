"""Train the example runs shipped in examples/ (read-only in the app) on Fashion-MNIST: the domain
classifier of the quality measure (first, so the generative runs get scored), the book's stacked AE,
the denoising AE, the VAE, the simple GAN and the DCGAN. Run with `make examples` (about 12 minutes
on 2 cores, most of it the DCGAN)."""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aelab  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RECIPES = {"classifier-fashion": "classifier", "stacked-fashion": "stacked", "denoising-fashion": "denoising-gaussian",
           "vae-fashion": "vae", "gan-fashion": "gan", "dcgan-fashion": "dcgan"}


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


if __name__ == "__main__":
    main(sys.argv[1:])   # names of the examples to (re)train; all by default
