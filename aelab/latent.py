"""Encode image sets, project codes to 2-D or 3-D with PCA, t-SNE or UMAP, and record codes during training."""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .data import to_float
from .runtime import INFERENCE_BATCH
from .train import Callback, TrainState


@torch.no_grad()
def encode_images(model, x_uint8: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
    """Codes (N, latent) as float32 numpy; the posterior mean for a VAE."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [model.encode(to_float(x_uint8[i:i + batch_size].to(device))).cpu()
              for i in range(0, len(x_uint8), batch_size)]
    return torch.cat(chunks).numpy()


@torch.no_grad()
def decode_codes(model, z: np.ndarray | torch.Tensor) -> np.ndarray:
    """Images (N, H, W) in [0, 1] decoded from codes (N, latent)."""
    model.eval()
    device = next(model.parameters()).device
    return model.to_image(model.decode(torch.as_tensor(z, dtype=torch.float32, device=device)))[:, 0].cpu().numpy()


class CodeRecorder(Callback):
    """A trainer callback: the codes of ``n_images`` fixed validation images (spread evenly over the
    validation set) before training and after every epoch, for the latent time-lapse. Models without
    an encoder record nothing."""

    def __init__(self, n_images: int = 1000, batch_size: int = 1000, codes: np.ndarray | None = None):
        """``codes``: those of the run that training continues (its timeline's): kept in front, and no codes
        are recorded before training."""
        self.n_images, self.batch_size = n_images, batch_size
        # (n, latent) per epoch, 0 = untrained
        self.codes: list[np.ndarray] = [c.astype(np.float32) for c in codes] if codes is not None else []
        self.labels: np.ndarray | None = None     # (n,)
        self._x: torch.Tensor | None = None

    def on_train_begin(self, state: TrainState) -> None:
        if not state.model.can_encode or not self.n_images:
            return
        self._x, labels = state.split.val_sample(self.n_images)
        self.labels = labels.cpu().numpy()
        if not self.codes:
            self.on_epoch_end(state)

    def on_epoch_end(self, state: TrainState) -> None:
        if self._x is not None:
            self.codes.append(encode_images(state.model, self._x, self.batch_size))

    def timeline(self) -> dict[str, np.ndarray]:
        """The part of a run's timeline.safetensors it fills (see :meth:`aelab.runs.Run.timeline`)."""
        if not self.codes:
            return {}
        codes = np.stack(self.codes)   # (epochs + 1, n, latent)
        # float16 halves the file, but overflows past 65504: a run gone astray (a huge learning rate) keeps float32
        fits = np.isfinite(codes).all() and np.abs(codes).max() < np.finfo(np.float16).max
        return {"codes": codes.astype(np.float16 if fits else np.float32), "code_labels": self.labels}


PROJECTIONS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}   # method -> its name on a page


@dataclass
class Projection:
    coords: np.ndarray                          # (N, dims)
    method: str                                 # a key of PROJECTIONS
    explained_variance: np.ndarray | None = None   # PCA: ratio per component
    model: object | None = None                 # the fitted sklearn PCA (inverse_transform decodes the plane)


def project(codes: np.ndarray, method: str = "pca", dims: int = 2, *, perplexity: float = 30.0,
            learning_rate: float | str = "auto", max_iter: int = 750, n_neighbors: int = 15,
            min_dist: float = 0.1, seed: int = 0) -> Projection:
    """Project codes (N, D) to ``dims`` (2 or 3) with 'pca', 'tsne' (Barnes-Hut, PCA-initialised) or 'umap'.

    750 t-SNE iterations, not scikit-learn's 1,000: on 5,000 Fashion-MNIST codes the map is as good
    (kNN accuracy in 2-D 0.782 vs 0.781) and 27 % faster (8.1 vs 11.1 s here). UMAP reads ``n_neighbors``
    (how local the map is) and ``min_dist`` (how tightly it packs points); see :func:`umap_projection`."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    codes = np.asarray(codes, dtype=np.float32)
    if not np.isfinite(codes).all():
        raise ValueError("some codes are not finite numbers (the model's weights went astray in training: a "
                         "learning rate too large?), so they cannot be projected")
    if method == "pca":
        from sklearn.decomposition import PCA

        k = min(dims, codes.shape[1], len(codes))
        pca = PCA(n_components=k, random_state=seed).fit(codes)
        coords = pca.transform(codes)
        if k < dims:  # a 1-D code still plots: pad with zeros
            coords = np.pad(coords, ((0, 0), (0, dims - k)))
        return Projection(coords, "pca", pca.explained_variance_ratio_, pca)
    if method == "tsne":
        from sklearn.manifold import TSNE

        if not 1 <= perplexity < len(codes):
            raise ValueError(f"perplexity must be in [1, {len(codes)}) for {len(codes)} points, got {perplexity}")
        tsne = TSNE(n_components=dims, perplexity=perplexity, learning_rate=learning_rate, max_iter=max_iter,
                    init="pca" if dims <= codes.shape[1] else "random", random_state=seed)
        coords = tsne.fit_transform(codes)
        return Projection(coords, "tsne")
    if method == "umap":
        return Projection(umap_projection(codes, dims, n_neighbors, min_dist, seed), "umap")
    raise ValueError(f"unknown projection {method!r}; choose {', '.join(PROJECTIONS)}")


def umap_projection(codes: np.ndarray, dims: int, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """UMAP (umap-learn) of ``codes`` (N, D) to (N, dims), reproducible for a seed (so on one thread).

    The neighbour graph is scikit-learn's exact one, handed to UMAP: on 10,000 codes it takes a fraction of a
    second, and it spares pynndescent's numba compilation. umap-learn's own numba functions are compiled once
    per machine (see :func:`_numba_cached`)."""
    if not 2 <= n_neighbors < len(codes):
        raise ValueError(f"n_neighbors must be in [2, {len(codes)}) for {len(codes)} points, got {n_neighbors}")
    if not 0.0 <= min_dist <= 1.0:
        raise ValueError(f"min_dist must be in [0, 1], got {min_dist}")
    import numba
    from sklearn.neighbors import NearestNeighbors

    umap = _numba_cached()
    # numba's parallel functions use no more threads than torch may (the worker's limit)
    numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS, torch.get_num_threads())))
    # each point is its own first neighbour, at distance 0, as UMAP's own search returns it
    distances, indices = NearestNeighbors(n_neighbors=n_neighbors).fit(codes).kneighbors(codes)
    reducer = umap.UMAP(n_components=dims, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed,
                        n_jobs=1, precomputed_knn=(indices, distances.astype(np.float32), None))
    with warnings.catch_warnings():   # "no search index, so no transform of new data": none is needed here
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(reducer.fit_transform(codes), dtype=np.float32)


@functools.cache
def _numba_cached():
    """The ``umap`` module, its numba functions compiled to numba's on-disk cache.

    umap-learn caches only some of its functions: the others compile in every new process, for 11 s on a
    2-core machine (70-80 s with pynndescent's) before the first map. Caching them all makes that a one-time
    cost per machine (then about 5 s for the import). Where no cache directory is writable they compile as
    before."""
    import umap
    import umap.layouts
    import umap.umap_
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.layouts):
        for function in vars(module).values():
            if isinstance(function, CPUDispatcher):
                try:
                    function.enable_caching()
                except RuntimeError:   # numba found no writable place for its cache
                    pass
    return umap


def compile_umap() -> None:
    """Fill numba's on-disk cache with umap-learn's functions by drawing one small map, so that no visitor's
    first UMAP waits for the compilation. `make` calls it once after installing the requirements: like Python's
    .pyc files, the compiled code belongs to the installation."""
    codes = np.random.default_rng(0).random((300, 8), dtype=np.float32)
    umap_projection(codes, 2, 15, 0.1, 0)


def project_images(model, x_uint8: torch.Tensor, method: str = "pca", dims: int = 2,
                   **options) -> tuple[Projection, np.ndarray]:
    """(projection, codes (N, latent)): encode images and project their codes (see :func:`project`)."""
    codes = encode_images(model, x_uint8)
    return project(codes, method, dims, **options), codes


def plane_bounds(coords: np.ndarray, margin: float = 0.05) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): the box around the first two coordinates, widened by ``margin`` on each side."""
    lo, hi = coords[:, :2].min(0), coords[:, :2].max(0)
    pad = (hi - lo) * margin
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


def code_at(point, projection: Projection, codes: np.ndarray, k: int = 10) -> np.ndarray:
    """The code (latent,) behind a point (x, y) of a 2-D projection of ``codes``: the inverse PCA
    transform, or for t-SNE (which has no inverse) the mean code of the ``k`` nearest projected points."""
    point = np.asarray(point, dtype=np.float64)
    if projection.method == "pca":
        pca = projection.model
        return pca.inverse_transform(point[None, :pca.n_components_])[0].astype(np.float32)
    nearest = np.argsort(((projection.coords[:, :len(point)] - point) ** 2).sum(1))[:k]
    return np.asarray(codes, dtype=np.float32)[nearest].mean(0)


def timelapse(frames: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates (epochs + 1, n, 2) of the codes recorded after every epoch, in comparable frames.

    'pca': one basis, fitted on the final codes, projects every epoch. 'tsne': each epoch starts
    from the previous epoch's map (warm start) and is then rotated, reflected and scaled onto it
    (orthogonal Procrustes), so that points move only as much as their neighbourhoods change.
    """
    frames = np.asarray(frames, dtype=np.float32)
    bad = [epoch for epoch, codes in enumerate(frames) if not np.isfinite(codes).all()]
    if bad:
        raise ValueError(f"the codes after epoch {bad[0]} are not finite numbers (the training went astray: a "
                         "learning rate too large?), so they cannot be projected")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=min(2, frames.shape[2]), random_state=seed).fit(frames[-1])
        coords = np.stack([pca.transform(f) for f in frames])
        return np.pad(coords, ((0, 0), (0, 0), (0, 2 - coords.shape[2])))
    if method != "tsne":
        raise ValueError(f"unknown time-lapse projection {method!r}; choose pca or tsne")
    from scipy.linalg import orthogonal_procrustes
    from sklearn.manifold import TSNE

    out, previous = [], None
    perplexity = min(30.0, (len(frames[0]) - 1) / 3)
    for codes in frames:
        init = "pca" if previous is None else previous / previous[:, 0].std() * 1e-4   # sklearn's init scale
        current = TSNE(2, perplexity=perplexity, init=init, max_iter=500, random_state=seed).fit_transform(codes)
        if previous is not None:
            a, b = current - current.mean(0), previous - previous.mean(0)
            rotation, scale = orthogonal_procrustes(a, b)
            current = a @ rotation * (scale / (a ** 2).sum()) + previous.mean(0)
        out.append(current)
        previous = current
    return np.stack(out).astype(np.float32)


def nearest_in_code_space(codes: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """For every code (N, latent): its ``k`` nearest other codes by Euclidean distance in the code space
    itself (not on a 2-D map), nearest first: (indices (N, k) int32, distances (N, k) float32)."""
    from sklearn.neighbors import NearestNeighbors

    codes = np.asarray(codes, dtype=np.float32)
    n = len(codes)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((n, 0), np.int32), np.zeros((n, 0), np.float32)
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(codes).kneighbors(codes)
    # drop each point itself (not always column 0 when another code is identical)
    keep = idx != np.arange(n)[:, None]
    keep[keep.sum(1) > k, -1] = False   # a row where the point itself was not among its k + 1
    return idx[keep].reshape(n, k).astype(np.int32), dist[keep].reshape(n, k).astype(np.float32)


def sprite_sheet(images: np.ndarray) -> tuple[bytes, int]:
    """(PNG bytes, columns): ``images`` (N, H, W) floats in [0, 1] tiled row by row into one grayscale image,
    ``columns`` = ceil(sqrt(N)) tiles wide: the Embedding Projector's sprite, sent to the browser once."""
    import io

    from PIL import Image

    n, h, w = images.shape
    cols = max(1, int(np.ceil(np.sqrt(n))))
    rows = -(-n // cols)
    sheet = np.zeros((rows * cols, h, w), np.uint8)
    sheet[:n] = np.round(np.clip(images, 0, 1) * 255)
    sheet = sheet.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
    buf = io.BytesIO()
    Image.fromarray(sheet, mode="L").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue(), cols


@torch.no_grad()
def hover_map(model, x_uint8: torch.Tensor, labels: np.ndarray, class_names, coords: np.ndarray,
              codes: np.ndarray, k: int = 10) -> dict:
    """What the Latent space page's hover map draws, computed once (JSON-ready): the ``coords`` (N, 2 or 3) of
    the images ``x_uint8`` (N, C, H, W), their labels and class names, a sprite sheet of the images (base64
    PNG) and of their reconstructions when the model has them, and each point's ``k`` nearest neighbours in
    code space with their distances (:func:`nearest_in_code_space`). ``labels``: an array, or a tensor on the CPU."""
    import base64

    images = _tiles(to_float(x_uint8))
    sprite, cols = sprite_sheet(images)
    recon = None
    if model.can_reconstruct:
        model.eval()
        device = next(model.parameters()).device
        out = [_tiles(model.to_image(model.decode(model.encode(to_float(x_uint8[i:i + INFERENCE_BATCH].to(device)))))
                      .cpu()) for i in range(0, len(x_uint8), INFERENCE_BATCH)]
        recon = base64.b64encode(sprite_sheet(np.concatenate(out))[0]).decode()
    idx, dist = nearest_in_code_space(codes, k)
    coords = np.asarray(coords, dtype=np.float32)
    if coords.ndim != 2 or coords.shape[1] not in (2, 3) or len(coords) != len(x_uint8):
        raise ValueError(f"coords must be (N, 2) or (N, 3) for {len(x_uint8)} images, got {coords.shape}")
    axes = {name: np.round(coords[:, i], 4).tolist() for i, name in enumerate("xyz"[:coords.shape[1]])}
    return {**axes,
            "labels": np.asarray(labels).astype(int).tolist(), "classes": [str(c) for c in class_names],
            "sprite": base64.b64encode(sprite).decode(), "recon": recon, "cols": cols,
            "h": int(images.shape[1]), "w": int(images.shape[2]),   # a tile's size in the sprite
            "neighbours": idx.tolist(), "distances": np.round(dist, 4).tolist()}


SPRITE_SIDE = 32   # a sprite's tiles are at most this wide and high: 10,000 images of 128 x 128 would be 164 MP


def _tiles(images: torch.Tensor) -> np.ndarray:
    """(N, H, W) floats in [0, 1] for a sprite sheet from images (N, C, H, W) in [0, 1]: the first channel, shrunk
    (by area) to at most ``SPRITE_SIDE`` pixels a side."""
    images = images[:, :1].float()
    h, w = images.shape[2:]
    if max(h, w) > SPRITE_SIDE:
        scale = SPRITE_SIDE / max(h, w)
        images = torch.nn.functional.interpolate(images, size=(max(1, round(h * scale)), max(1, round(w * scale))),
                                                 mode="area")
    return images[:, 0].numpy()
