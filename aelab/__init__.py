"""AE Lab: autoencoders you can train, inspect and sample from (PyTorch; no Streamlit in here).

Quick start::

    import aelab
    cfg = aelab.preset("stacked", data="digits")
    exp = aelab.train(cfg, runs_dir="runs")
    print(exp.run.name, exp.run.final_val_loss)
"""
from . import runtime  # noqa: F401  first: it picks torch's CPU kernels before any runs (aelab.runtime.choose_kernels)
from .config import (
                     AutoencoderConfig,
                     ClassifierConfig,
                     DataConfig,
                     GANConfig,
                     ModelConfig,
                     RunConfig,
                     StudyConfig,
                     TrainConfig,
                     with_overrides,
)
from .data import Dataset, load_dataset
from .errors import ConfigError, DataError, RunError, TrainingDiverged, UploadError
from .experiment import Experiment, evaluate_run, train
from .models import Autoencoder, Output, build_model
from .presets import PRESETS, preset
from .pretrain import run_study, summarize
from .runs import Run, RunStore, Study, find_run
from .train import Callback, Trainer, TrainState

__version__ = "0.1.0"
__all__ = ["AutoencoderConfig", "ClassifierConfig", "DataConfig", "GANConfig", "ModelConfig", "RunConfig",
           "StudyConfig", "TrainConfig", "with_overrides", "Dataset", "load_dataset", "ConfigError", "DataError",
           "RunError", "TrainingDiverged", "UploadError", "Experiment", "evaluate_run", "train", "Autoencoder",
           "Output", "build_model", "PRESETS", "preset", "Run", "RunStore", "Study", "find_run", "run_study",
           "summarize", "Callback", "Trainer", "TrainState", "__version__"]
