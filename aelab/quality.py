"""How good are generated images? A Fréchet distance on a domain classifier's features, and mode coverage.

The FID of the literature compares Inception-v3 features of ImageNet photos; it cannot be computed
offline here and says little about 28x28 garments. AE Lab trains a small classifier on the data set
itself (preset ``classifier``, stored as an ordinary run) and computes the same statistic on its
128 penultimate features: the Fréchet distance between the Gaussians fitted to the features of the
samples and of the test images. Lower is better; 0 means the same feature statistics. Numbers are
only comparable with the same classifier run and the same number of samples.

Mode coverage: the classifier's predicted class distribution of the samples, next to the test set's.
"""
from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .data import Dataset, to_float
from .runtime import INFERENCE_BATCH

DEFAULT_SAMPLES = 5000


@torch.no_grad()
def features(classifier, images: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, F) float64, class probabilities (N, K)) of float images (N, C, H, W) in [0, 1]
    (uint8 images are converted)."""
    classifier.eval()
    device = next(classifier.parameters()).device
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        xb = images[i:i + batch_size].to(device)
        xb = to_float(xb) if xb.dtype == torch.uint8 else xb.float()
        z = classifier.encode(xb)
        feats.append(z.double().cpu())
        probs.append(torch.softmax(classifier.head(z), 1).double().cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, F) and b (M, F):
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD matrix
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * trace_root)


@dataclass
class QualityReport:
    fid: float                       # Fréchet distance, samples vs test images (domain classifier features)
    reference_fid: float             # the same for as many real training images: the floor to compare with
    class_shares: list[float]        # the classifier's predicted class distribution of the samples
    test_shares: list[float]         # ... and of the test images
    classes_covered: int             # classes predicted for at least half their test-set share
    class_kl: float                  # KL(samples' predicted shares || test images' predicted shares), nats
    confidence: float                # mean top-class probability of the samples (real test images: see below)
    test_confidence: float
    n_samples: int
    classifier: str = ""             # the classifier run's name
    classifier_accuracy: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


def quality_report(model, classifier, dataset: Dataset, n: int = DEFAULT_SAMPLES, seed: int = 0,
                   classifier_name: str = "", classifier_accuracy: float | None = None) -> QualityReport:
    """Sample ``n`` images from ``model`` (VAE or GAN) and score them against ``dataset``'s test set with the
    features of ``classifier`` (a trained domain classifier; its run's name and accuracy go into the report)."""
    if not getattr(model, "can_sample", False):
        raise TypeError("the quality measure needs a generative model (a VAE or a GAN)")
    device = next(model.parameters()).device
    samples = model.sample(n, generator=torch.Generator(device).manual_seed(seed)).cpu()
    return score_images(samples, classifier, dataset, seed, classifier_name, classifier_accuracy)


def score_images(samples: torch.Tensor, classifier, dataset: Dataset, seed: int = 0, classifier_name: str = "",
                 classifier_accuracy: float | None = None) -> QualityReport:
    """Score generated images (N, C, H, W) in [0, 1], from any generator (the benchmark's Keras twins too),
    against ``dataset``'s test set: the same report as :func:`quality_report`."""
    n = len(samples)
    f_gen, p_gen = features(classifier, samples)
    f_test, p_test, reference_fid = _reference(classifier, dataset, n, seed)
    k = p_test.shape[1]
    gen_shares = np.bincount(p_gen.argmax(1), minlength=k) / len(p_gen)
    test_shares = np.bincount(p_test.argmax(1), minlength=k) / len(p_test)
    eps = 1e-6
    kl = float(np.sum(gen_shares * (np.log(gen_shares + eps) - np.log(test_shares + eps))))
    return QualityReport(
        fid=frechet_distance(f_gen, f_test), reference_fid=reference_fid,
        class_shares=gen_shares.tolist(), test_shares=test_shares.tolist(),
        classes_covered=int((gen_shares >= 0.5 * test_shares).sum()), class_kl=max(kl, 0.0),
        confidence=float(p_gen.max(1).mean()), test_confidence=float(p_test.max(1).mean()), n_samples=n,
        classifier=classifier_name, classifier_accuracy=classifier_accuracy)


_REFERENCES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _reference(classifier, dataset: Dataset, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(test features, test class probabilities, FID of ``n`` real training images): the same for every
    generator scored by ``classifier``, so computed once per classifier (comparing three runs costs one)."""
    per_classifier = _REFERENCES.setdefault(classifier, {})
    key = (dataset.name, dataset.source, n, seed)
    if key not in per_classifier:
        f_test, p_test = features(classifier, dataset.x_test)
        order = torch.randperm(len(dataset.x_train), generator=torch.Generator().manual_seed(seed))
        f_real, _ = features(classifier, dataset.x_train[order[:min(n, len(dataset.x_train))]])
        per_classifier[key] = (f_test, p_test, frechet_distance(f_real, f_test))
    return per_classifier[key]


@torch.no_grad()
def accuracy(classifier, x_uint8: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``classifier`` on uint8 images."""
    _, probs = features(classifier, x_uint8)
    return float((probs.argmax(1) == y.numpy()).mean())
