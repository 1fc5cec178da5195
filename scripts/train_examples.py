"""Train the example runs shipped in examples/ (read-only in the app): the book's stacked AE,
the denoising AE and the VAE on Fashion-MNIST. Run with `make examples` (about 2 minutes on 2 cores)."""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aelab  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RECIPES = {"stacked-fashion": "stacked", "denoising-fashion": "denoising-gaussian", "vae-fashion": "vae"}


def main() -> None:
    EXAMPLES.mkdir(exist_ok=True)
    for name, recipe in RECIPES.items():
        cfg = aelab.preset(recipe, "fashion-mnist")
        cfg.train.device = "cpu"
        shutil.rmtree(EXAMPLES / name, ignore_errors=True)
        exp = aelab.train(cfg, runs_dir=EXAMPLES, name=name)
        size = (exp.run.path / "model.safetensors").stat().st_size / 1e6
        print(f"{name}: val loss {exp.run.final_val_loss:.4f}, {exp.fit.seconds_per_epoch:.2f} s/epoch, "
              f"weights {size:.2f} MB")


if __name__ == "__main__":
    main()
