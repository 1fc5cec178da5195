"""The app's background computations: each a function of picklable arguments that a worker process runs.

A page asks :meth:`aelab.jobs.Registry.task` for one of these by name; a worker (:mod:`aelab.worker`) loads
the run's model and data set itself, so neither the encoding, the t-SNE, scoring the test set nor sampling
costs the server any CPU, and a model too slow or too large for the server ends that worker only.
"""
from __future__ import annotations

import numpy as np

from . import diagnostics, dimred, latent, metrics, quality
from .data import load_dataset
from .runs import Run


def projection(run: Run, n: int, method: str = "pca", dims: int = 2,
               **options) -> tuple[latent.Projection, np.ndarray]:
    """(projection, codes): the codes of the first ``n`` test images of ``run``'s data set, projected with
    ``method`` to ``dims`` dimensions (see :func:`aelab.latent.project`)."""
    ds = load_dataset(run.config.data)
    return latent.project_images(run.load_model(), ds.x_test[:n], method, dims, **options)


def timelapse(run: Run, method: str = "pca") -> np.ndarray:
    """The 2-D frames (epochs + 1, n, 2) of the codes ``run`` recorded during training."""
    return latent.timelapse(run.timeline()["codes"], method)


def probes(run: Run) -> dict:
    """How much the codes know: kNN and logistic-regression accuracy on codes and on pixels."""
    return metrics.probe_report(run.load_model(), load_dataset(run.config.data))


def reconstruction_report(run: Run, n_worst: int = 20) -> metrics.ReconstructionReport:
    """BCE, MSE, PSNR and SSIM of ``run`` on its whole test set: means, per class, and the worst images."""
    ds = load_dataset(run.config.data)
    return metrics.reconstruction_report(run.load_model(), ds.x_test, ds.y_test, ds.class_names, n_worst=n_worst)


def code_diagnostics(run: Run, n: int = 2000) -> diagnostics.CodeDiagnostics:
    """The codes of the first ``n`` test images of ``run``'s data set, and a VAE's KL per latent dimension."""
    return diagnostics.code_diagnostics(run.load_model(), load_dataset(run.config.data).x_test[:n])


def quality_report(run: Run, classifier_run: Run, n: int = quality.DEFAULT_SAMPLES) -> dict:
    """The quality report (JSON) of ``n`` samples of ``run`` scored with the domain classifier ``classifier_run``."""
    return quality.quality_report(
        run.load_model(), classifier_run.load_model(), load_dataset(run.config.data), n,
        classifier_name=classifier_run.name,
        classifier_accuracy=classifier_run.metrics.get("test", {}).get("accuracy")).to_json()


def hash_table(run: Run, n: int = 10_000) -> dict:
    """The hashes of the first ``n`` test images of ``run`` (sigmoid codes rounded to bits), the share of
    activations that are already near 0 or 1, and the code size."""
    ds = load_dataset(run.config.data)
    codes = latent.encode_images(run.load_model(), ds.x_test[:n])
    return {"hashes": diagnostics.hashes(codes), "binary_share": diagnostics.binary_share(codes),
            "bits": codes.shape[1]}


def hover_map(run: Run, n: int, coords: bytes, dims: int) -> dict:
    """The hover map's data (:func:`aelab.latent.hover_map`) of the first ``n`` test images of ``run``'s data
    set, drawn at ``coords``: the float32 bytes of their (n, dims) projection, as the projection task returned
    it (bytes, so that the task's arguments stay hashable and the same map is shared)."""
    points = np.frombuffer(coords, dtype=np.float32)
    if points.size != n * dims:
        raise ValueError(f"coords hold {points.size} numbers, not {n} points of {dims} dimensions")
    ds = load_dataset(run.config.data)
    model = run.load_model()
    x = ds.x_test[:n]
    return latent.hover_map(model, x, ds.y_test[:n], ds.class_names, points.reshape(n, dims),
                            latent.encode_images(model, x))


def book_3d_demo(seed: int = 42) -> dimred.Demo3D:
    """The book's 3-D linear-autoencoder demo beside PCA (see :func:`aelab.dimred.book_3d_demo`)."""
    return dimred.book_3d_demo(seed)


TASKS = {"projection": projection, "timelapse": timelapse, "probes": probes, "reconstruction": reconstruction_report,
         "quality": quality_report, "diagnostics": code_diagnostics, "hashes": hash_table,
         "hover_map": hover_map, "book_3d": book_3d_demo}
