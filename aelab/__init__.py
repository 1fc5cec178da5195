"""AE Lab: autoencoders you can train, inspect and sample from (PyTorch; no Streamlit in here).

Quick start::

    import aelab
    cfg = aelab.preset("stacked", data="digits")
    exp = aelab.train(cfg, runs_dir="runs")
    print(exp.run.name, exp.run.final_val_loss)
"""
from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from .data import DataError, Dataset, load_dataset
from .experiment import Experiment, evaluate_run, train
from .models import Autoencoder, Output, build_model
from .presets import PRESETS, preset
from .runs import Run, RunError, RunStore
from .train import Callback, Trainer, TrainingDiverged, TrainState

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "DataError", "Dataset",
           "load_dataset", "Experiment", "evaluate_run", "train", "Autoencoder", "Output", "build_model",
           "PRESETS", "preset", "Run", "RunError", "RunStore", "Callback", "Trainer", "TrainingDiverged",
           "TrainState", "__version__"]
