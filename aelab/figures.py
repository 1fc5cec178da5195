"""Plotly figures and image grids from arrays (pure functions, no Streamlit)."""
from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from . import pretrain
from .i18n import DEFAULT, N_, gettext_for
from .presets import BOOK_VAL_LOSS

# Every text a figure shows is in the catalog: a figure function takes the visitor's ``lang`` (English by default).
TERM_LABELS = {"recon": N_("reconstruction (per pixel)"), "kl": N_("KL (nats / image)"),
               "nelbo": N_("−ELBO (nats / image)"), "sparsity": N_("sparsity penalty")}
EPOCH = N_("epoch")


def _live(points: int) -> str:
    """The mode of a live trace: its lone first point as a marker (a line through one point draws nothing)."""
    return "lines" if points > 1 else "markers"


def _layout(fig: go.Figure, title: str, y: str, x: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white", height=360,
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def loss_figure(history: dict, trace: list[tuple[float, float]] | None = None, reference: float | None = None,
                reference_label: str = "book", epochs: int | None = None,
                phase_labels: dict[int, str] | None = None, lang: str = DEFAULT) -> go.Figure:
    """Training and validation loss per epoch, the live batch trace, and an optional reference line; for
    greedy training a band per phase (``phase_labels``: :meth:`aelab.RunConfig.phase_labels`) and the images'
    reconstruction loss through the layers trained so far, which the phases share."""
    _ = gettext_for(lang)
    fig = go.Figure()
    phases = history.get("phase", [])
    for phase in dict.fromkeys(phases):
        xs = [e for e, p in zip(history["epoch"], phases) if p == phase]
        fig.add_vrect(x0=xs[0] - 1, x1=xs[-1], fillcolor="#E0E7FF" if phase % 2 else "#F1F5F9", opacity=0.5,
                      line_width=0, annotation_position="top left",
                      annotation_text=(phase_labels or {}).get(int(phase), _("phase {phase:g}").format(phase=phase)))
    if phases and "val_recon" in history:
        fig.add_scatter(x=history["epoch"], y=history["val_recon"], name=_("validation, images (stack so far)"),
                        mode="lines+markers", line=dict(color="#059669", dash="dot"))
    if trace:
        xs, ys = zip(*trace)
        fig.add_scatter(x=xs, y=ys, name=_("training (live)"), mode=_live(len(xs)), line=dict(color="#A5B4FC", width=1))
    ep = history.get("epoch", [])
    if ep:
        fig.add_scatter(x=ep, y=history["loss"], name=_("training"), mode="lines+markers", line=dict(color="#4F46E5"))
        fig.add_scatter(x=ep, y=history["val_loss"], name=_("validation"), mode="lines+markers",
                        line=dict(color="#F97316"))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dot", line_color="#059669",
                      annotation_text=f"{reference_label}: {reference}", annotation_position="top right")
    if epochs:
        fig.update_xaxes(range=[0, epochs + 0.1])
    if not fig.data:   # nothing to draw yet (the chart before Start): around the reference, not plotly's -1 to 4
        fig.update_yaxes(range=[0, 2 * reference if reference else 1])
    return _layout(fig, _("Loss"), _("loss"), _(EPOCH))


def terms_figure(history: dict, lang: str = DEFAULT) -> go.Figure | None:
    """One line per named loss term (validation), or None when the model has only a reconstruction term."""
    terms = [k for k in TERM_LABELS if k != "recon" and f"val_{k}" in history]
    if not terms:
        return None
    _ = gettext_for(lang)
    fig = go.Figure()
    for k in ["recon", *terms]:
        fig.add_scatter(x=history["epoch"], y=history[f"val_{k}"], name=_(TERM_LABELS[k]), mode="lines+markers",
                        yaxis="y2" if k in ("kl", "nelbo", "sparsity") else "y")
    fig.update_layout(yaxis2=dict(overlaying="y", side="right", title=_("nats / penalty")))
    return _layout(fig, _("Validation loss terms"), _("per pixel"), _(EPOCH))


def beta_figure(history: dict, traces: dict[str, list[tuple[float, float]]] | None = None,
                epochs: int | None = None, lang: str = DEFAULT) -> go.Figure:
    """A VAE's KL weight β and KL term (live, per batch) with its active units (per epoch, right axis): the
    β schedule at work, and posterior collapse (active units falling) as it happens."""
    _ = gettext_for(lang)
    fig = go.Figure()
    traces = traces or {}
    if traces.get("beta"):
        xs, ys = zip(*traces["beta"])
        fig.add_scatter(x=xs, y=ys, name="β", mode=_live(len(xs)), line=dict(color="#4F46E5", shape="linear"))
    elif history.get("beta"):
        fig.add_scatter(x=history["epoch"], y=history["beta"], name="β", mode="lines+markers",
                        line=dict(color="#4F46E5"))
    if traces.get("kl"):
        xs, ys = zip(*traces["kl"])
        fig.add_scatter(x=xs, y=ys, name=_("KL (training, nats / image)"), mode=_live(len(xs)), yaxis="y3",
                        line=dict(color="#F97316", width=1))
    if history.get("val_kl"):
        fig.add_scatter(x=history["epoch"], y=history["val_kl"], name=_("KL (validation)"), mode="markers", yaxis="y3",
                        marker=dict(color="#F97316"))
    if history.get("active_units"):
        fig.add_scatter(x=history["epoch"][-len(history["active_units"]):], y=history["active_units"],
                        name=_("active units"), mode="lines+markers", yaxis="y2",
                        line=dict(color="#059669", dash="dot"))
    fig.update_layout(yaxis2=dict(overlaying="y", side="right", title=_("active units"), rangemode="tozero"),
                      yaxis3=dict(overlaying="y", side="right", anchor="free", autoshift=True, title=_("KL (nats)")))
    if epochs:
        fig.update_xaxes(range=[0, epochs + 0.1])
    return _layout(fig, _("β, KL and active units"), "β", _(EPOCH))


def training_figure(cfg, history: dict, traces: dict[str, list[tuple[float, float]]],
                    lang: str = DEFAULT) -> go.Figure:
    """The losses of a training job of ``cfg`` (a RunConfig): per epoch (``history``) and live (``traces``); a GAN's
    both networks', else the loss with the book's result as a reference line (its recipe on Fashion-MNIST)."""
    if cfg.model.family == "gan":
        return gan_figure(history, traces, cfg.train.epochs, lang=lang)
    _ = gettext_for(lang)
    reference = BOOK_VAL_LOSS.get(cfg.preset) if cfg.data.name == "fashion-mnist" else None
    return loss_figure(history, traces.get("loss"), reference, _("book, epoch 10"), cfg.total_epochs,
                       cfg.phase_labels(lang), lang=lang)


def gan_figure(history: dict, traces: dict[str, list[tuple[float, float]]] | None = None,
               epochs: int | None = None, lang: str = DEFAULT) -> go.Figure:
    """Both networks' losses (live trace and per epoch) and the discriminator's accuracy on real and fake."""
    _ = gettext_for(lang)
    fig = go.Figure()
    colors = {"d_loss": "#F97316", "g_loss": "#4F46E5", "acc_real": "#059669", "acc_fake": "#DC2626"}
    names = {"d_loss": _("discriminator loss"), "g_loss": _("generator loss"), "acc_real": _("D accuracy on real"),
             "acc_fake": _("D accuracy on fakes")}
    for k in ("d_loss", "g_loss"):
        trace = (traces or {}).get(k)
        if trace:
            xs, ys = zip(*trace)
            fig.add_scatter(x=xs, y=ys, name=_("{name} (live)").format(name=names[k]), mode=_live(len(xs)),
                            opacity=0.45, line=dict(color=colors[k], width=1), showlegend=False)
        if history.get(k):
            fig.add_scatter(x=history["epoch"], y=history[k], name=names[k], mode="lines+markers",
                            line=dict(color=colors[k]))
    for k in ("acc_real", "acc_fake"):
        if history.get(k):
            fig.add_scatter(x=history["epoch"], y=history[k], name=names[k], mode="lines+markers", yaxis="y2",
                            line=dict(color=colors[k], dash="dot"))
    fig.update_layout(yaxis2=dict(overlaying="y", side="right", range=[0, 1], title=_("accuracy"),
                                  tickformat=".0%"))
    if epochs:
        fig.update_xaxes(range=[0, epochs + 0.1])
    return _layout(fig, _("Generator vs discriminator"), _("binary cross-entropy"), _(EPOCH))


def class_share_figure(shares: dict[str, list[float]], class_names, lang: str = DEFAULT) -> go.Figure:
    """Grouped bars: predicted class distribution of each sample set (and of the test images)."""
    fig = go.Figure()
    for name, values in shares.items():
        fig.add_bar(x=list(class_names), y=values, name=name)
    fig.update_layout(barmode="group", yaxis_tickformat=".0%")
    _ = gettext_for(lang)
    return _layout(fig, _("Classes the domain classifier sees in the samples"), _("share of images"), _("class"))


def compare_figure(histories: dict[str, dict], key: str = "val_loss", lang: str = DEFAULT) -> go.Figure:
    """Overlay one curve per run. A greedy run's ``val_loss`` changes meaning between phases (images, then
    codes), so its images' reconstruction loss (``val_recon``) stands in for it."""
    _ = gettext_for(lang)
    fig = go.Figure()
    for name, h in histories.items():
        k = "val_recon" if key == "val_loss" and "phase" in h and h.get("val_recon") else key
        if h.get(k):
            fig.add_scatter(x=h["epoch"], y=h[k], name=name + (_(" (images)") if k != key else ""),
                            mode="lines+markers")
    return _layout(fig, key.replace("_", " "), key, _(EPOCH))


def image_grid(images: np.ndarray, ncols: int = 10, scale: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, H, W) floats in [0, 1] -> one uint8 image (rows of ``ncols``), small images scaled up (nearest)."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:   # (rows, cols, H, W)
        ncols = images.shape[1]
        images = images.reshape(-1, *images.shape[2:])
    n, h, w = images.shape
    scale = scale or max(1, 56 // h)
    images = np.clip(images, 0, 1).repeat(scale, axis=1).repeat(scale, axis=2)   # nearest, (n, h*s, w*s)
    if n == 1:   # as torchvision's make_grid (which this replaces: torchvision costs the server 75 MB): no frame
        return (images[0] * 255).round().astype(np.uint8)
    cols = min(ncols, n)
    rows = -(-n // cols)
    h, w = h * scale + pad, w * scale + pad   # a cell: the image and the gap after it
    grid = np.ones((rows * h + pad, cols * w + pad), dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h + pad:(r + 1) * h, c * w + pad:(c + 1) * w] = image
    return (grid * 255).round().astype(np.uint8)


def latent_scatter(coords: np.ndarray, labels: np.ndarray, class_names, title: str = "",
                   lang: str = DEFAULT) -> go.Figure:
    """2-D or 3-D scatter coloured by class name; hover shows class and test-set index."""
    _ = gettext_for(lang)
    klass, index = _("class"), _("index")
    names = np.asarray(class_names, dtype=object)[labels]
    data = {"x": coords[:, 0], "y": coords[:, 1], klass: names, index: np.arange(len(coords))}
    order = {klass: list(class_names)}
    if coords.shape[1] == 3:
        data["z"] = coords[:, 2]
        fig = px.scatter_3d(data, x="x", y="y", z="z", color=klass, hover_data=[index], category_orders=order,
                            opacity=0.7)
        fig.update_traces(marker_size=2)
    else:
        fig = px.scatter(data, x="x", y="y", color=klass, hover_data=[index], category_orders=order,
                         opacity=0.7, render_mode="webgl")
        fig.update_traces(marker_size=4)
    fig.update_layout(title=title, template="plotly_white", height=600, margin=dict(l=10, r=10, t=50, b=10),
                      legend_title_text="", dragmode="zoom" if coords.shape[1] == 2 else "orbit")
    return fig


DECODE_MARK = -1   # customdata of the invisible grid that makes every point of the plane clickable


def custom_value(point: dict):
    """The first customdata value of a selected point: Streamlit sends it as a list or as {"0": value}."""
    data = point.get("customdata")
    if isinstance(data, dict):
        return data.get("0")
    return data[0] if data else None


def add_decode_layer(fig: go.Figure, bounds: tuple[float, float, float, float], current=(None, None),
                     n: int = 40, lang: str = DEFAULT) -> go.Figure:
    """Add a nearly invisible n x n grid over ``bounds`` (x0, x1, y0, y1) whose points can be clicked,
    and a cross at the ``current`` decoded point."""
    _ = gettext_for(lang)
    x0, x1, y0, y1 = bounds
    gx, gy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    fig.add_trace(go.Scattergl(x=gx.ravel(), y=gy.ravel(), mode="markers", name=_("click to decode"), showlegend=False,
                               marker=dict(size=6, color="#000000", opacity=0.02),
                               customdata=np.full((n * n, 1), DECODE_MARK),
                               hovertemplate=_("decode ({point})").format(point="%{x:.2f}, %{y:.2f}")
                               + "<extra></extra>"))
    if current[0] is not None and current[1] is not None:
        fig.add_scatter(x=[current[0]], y=[current[1]], mode="markers", name=_("decoded point"), showlegend=False,
                        marker=dict(symbol="x-thin", size=18, line=dict(width=3, color="#111827")),
                        hoverinfo="skip")
    return fig


def timelapse_figure(coords: np.ndarray, labels: np.ndarray, class_names, title: str = "",
                     lang: str = DEFAULT) -> go.Figure:
    """Animated scatter of (epochs + 1, n, 2) coordinates: play/pause buttons and an epoch slider."""
    _ = gettext_for(lang)
    epoch, klass = _(EPOCH), _("class")
    frames, n = coords.shape[0], coords.shape[1]
    names = np.asarray(class_names, dtype=object)[labels]
    data = {"x": coords[:, :, 0].ravel(), "y": coords[:, :, 1].ravel(), epoch: np.repeat(np.arange(frames), n),
            klass: np.tile(names, frames), "point": np.tile(np.arange(n), frames)}
    pad_x, pad_y = np.ptp(coords[..., 0]) * 0.05, np.ptp(coords[..., 1]) * 0.05
    fig = px.scatter(data, x="x", y="y", color=klass, animation_frame=epoch, animation_group="point",
                     category_orders={klass: list(class_names)}, opacity=0.7,
                     range_x=[coords[..., 0].min() - pad_x, coords[..., 0].max() + pad_x],
                     range_y=[coords[..., 1].min() - pad_y, coords[..., 1].max() + pad_y])
    fig.update_traces(marker_size=4)
    fig.update_layout(title=title, template="plotly_white", height=600, margin=dict(l=10, r=10, t=50, b=10),
                      legend_title_text="")
    return fig


def per_class_figure(per_class: dict[str, dict[str, float]], metric: str = "bce", class_names=None,
                     lang: str = DEFAULT) -> go.Figure:
    """The mean ``metric`` of each class; ``class_names``: the classes as shown (default: as in ``per_class``)."""
    _ = gettext_for(lang)
    names = list(per_class)
    fig = px.bar(x=list(class_names or names), y=[per_class[n][metric] for n in names],
                 labels={"x": _("class"), "y": metric.upper()})
    fig.update_traces(marker_color="#4F46E5")
    return _layout(fig, _("Mean {metric} per class").format(metric=metric.upper()), metric.upper(), _("class"))


STUDY_COLORS = {"scratch": "#6B7280", "frozen": "#2563EB", "finetuned": "#F97316", "pixels": "#059669"}
ENCODER_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def study_figure(rows: list[dict], title: str = "", lang: str = DEFAULT) -> go.Figure:
    """Test accuracy against the number of labels (log x axis): one colour per variant, a band of ± one
    standard deviation over seeds, a line style per encoder. ``rows``: :func:`aelab.pretrain.summarize`."""
    _ = gettext_for(lang)
    fig = go.Figure()
    encoders = list(dict.fromkeys(r["encoder"] for r in rows if r["encoder"] is not None))
    for encoder in [None, *encoders]:
        for variant, color in STUDY_COLORS.items():
            line = sorted((r for r in rows if r["encoder"] == encoder and r["variant"] == variant),
                          key=lambda r: r["labels"])
            if not line:
                continue
            x = [r["labels"] for r in line]
            mean, std = np.array([r["mean"] for r in line]), np.array([r["std"] for r in line])
            name = _(pretrain.LABELS[variant]) + (f" · {encoder}" if encoder is not None and len(encoders) > 1 else "")
            group = f"{variant}-{encoder}"
            fig.add_scatter(x=x + x[::-1], y=np.concatenate([mean + std, (mean - std)[::-1]]), fill="toself",
                            fillcolor=color, opacity=0.15 / max(1, len(encoders)) ** 0.5, line=dict(width=0),
                            hoverinfo="skip", showlegend=False, legendgroup=group)
            dash = "solid" if encoder is None else ENCODER_DASHES[encoders.index(encoder) % len(ENCODER_DASHES)]
            fig.add_scatter(x=x, y=mean, name=name, mode="lines+markers", legendgroup=group,
                            line=dict(color=color, dash=dash), customdata=std,
                            hovertemplate=_("{n} labels: {accuracy}").format(
                                n="%{x}", accuracy="%{y:.1%} ± %{customdata:.1%}") + f"<extra>{name}</extra>")
    fig.update_xaxes(type="log")
    fig.update_yaxes(tickformat=".0%")
    _layout(fig, title or _("Test accuracy against the number of labels"), _("test accuracy"),
            _("labelled training images (log scale)"))
    if len(encoders) > 1:   # a legend row per encoder below the plot: give the plot its height back
        fig.update_layout(height=420 + 40 * len(encoders), legend=dict(y=-0.15, yanchor="top"),
                          margin=dict(b=10 + 30 * len(encoders)))
    return fig


def _histogram(values: np.ndarray, bins: int, title: str, x: str, y: str) -> go.Figure:
    """A histogram binned here (a run's codes can be a million values: the browser gets 50 bars)."""
    counts, edges = np.histogram(values, bins=bins)
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), marker_color="#4F46E5",
                           hovertemplate="%{x:.3g}: %{y:,}<extra></extra>"))
    return _layout(fig, title, y, x)


def activation_figures(codes: np.ndarray, sparsity_target: float | None = None,
                       lang: str = DEFAULT) -> tuple[go.Figure, go.Figure]:
    """The book's sparse-autoencoder figures: the distribution of all code activations, and of each code
    unit's mean activation (with a KL-sparse run's target rate marked). ``codes``: (N, latent)."""
    _ = gettext_for(lang)
    everything = _histogram(codes.ravel(), 50, _("All {n:,} code activations").format(n=codes.size),
                            _("activation"), _("count"))
    means = _histogram(codes.mean(axis=0), min(50, max(10, codes.shape[1] // 2)),
                       _("Mean activation of each of the {n} code units").format(n=codes.shape[1]),
                       _("mean activation"), _("count"))
    if sparsity_target is not None:
        means.add_vline(x=sparsity_target, line_dash="dot", line_color="#059669",
                        annotation_text=_("target {target:g}").format(target=sparsity_target),
                        annotation_position="top right")
    return everything, means


def kl_figure(kl_per_dim: np.ndarray, threshold: float, lang: str = DEFAULT) -> go.Figure:
    """Each latent dimension's mean KL to the prior, largest first, with the threshold of an active unit."""
    _ = gettext_for(lang)
    order = np.argsort(kl_per_dim)[::-1]
    active = int((kl_per_dim > threshold).sum())
    fig = go.Figure(go.Bar(x=[f"z{i}" for i in order], y=kl_per_dim[order],
                           marker_color=["#4F46E5" if kl_per_dim[i] > threshold else "#D1D5DB" for i in order],
                           hovertemplate="%{x}: " + _("{kl} nats").format(kl="%{y:.3f}") + "<extra></extra>"))
    fig.add_hline(y=threshold, line_dash="dot", line_color="#DC2626",
                  annotation_text=_("active above {threshold:g} nats").format(threshold=threshold),
                  annotation_position="top right")
    fig.update_yaxes(type="log")
    return _layout(fig, _("KL to the prior per latent dimension: {active} of {n} active").format(
        active=active, n=len(kl_per_dim)), _("nats (log scale)"), _("latent dimension, largest KL first"))


REDUCTION_COLORS = {"pca": "#059669", "linear": "#4F46E5", "nonlinear": "#F97316"}
REDUCTION_LABELS = {"pca": "PCA", "linear": N_("linear AE"), "nonlinear": N_("nonlinear AE (stacked)")}


def reduction_figure(rows: list[dict], title: str = "", lang: str = DEFAULT) -> go.Figure:
    """Test-set reconstruction MSE against the code size k (log x) for PCA and the two autoencoders.
    ``rows``: :func:`aelab.dimred.table` (k, pca, linear, nonlinear)."""
    _ = gettext_for(lang)
    fig = go.Figure()
    for model, color in REDUCTION_COLORS.items():
        points = [(r["k"], r[model]) for r in rows if model in r]
        if points:
            ks, mse = zip(*points)
            line = dict(color=color, width=5) if model == "pca" else \
                dict(color=color, dash="dash") if model == "linear" else dict(color=color)   # linear AE ≈ PCA
            label = _(REDUCTION_LABELS[model])
            fig.add_scatter(x=ks, y=mse, name=label, mode="lines+markers", line=line,
                            hovertemplate=f"k = %{{x}}: MSE %{{y:.5f}}<extra>{label}</extra>")
    fig.update_xaxes(type="log", tickvals=sorted({r["k"] for r in rows}))
    return _layout(fig, title or _("Reconstruction error against code size"), _("test MSE per pixel"),
                   _("code size k (log)"))


def book_3d_figures(points: np.ndarray, ae_codes: np.ndarray, pca_codes: np.ndarray,
                    lang: str = DEFAULT) -> tuple[go.Figure, go.Figure]:
    """The book's 3-D demo: the point cloud (3-D), and its 2-D codes from the linear AE and from PCA side by
    side (the AE's axes are any basis of the plane: the same picture up to a linear map)."""
    _ = gettext_for(lang)
    cloud = go.Figure(go.Scatter3d(x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers",
                                   marker=dict(size=3, color="#4F46E5")))
    cloud.update_layout(title=_("The book's 3-D data set (60 points)"), template="plotly_white", height=360,
                        margin=dict(l=0, r=0, t=50, b=0))
    codes = go.Figure()
    codes.add_scatter(x=ae_codes[:, 0], y=ae_codes[:, 1], mode="markers", name=_("linear AE codes"),
                      marker=dict(color="#4F46E5"))
    codes.add_scatter(x=pca_codes[:, 0], y=pca_codes[:, 1], mode="markers", name="PCA", xaxis="x2", yaxis="y2",
                      marker=dict(color="#059669"))
    codes.update_layout(xaxis=dict(domain=[0, 0.45], title="z₁"), yaxis=dict(title="z₂"),
                        xaxis2=dict(domain=[0.55, 1], title="PC 1"), yaxis2=dict(anchor="x2", title="PC 2"))
    return cloud, _layout(codes, _("Projected to 2-D: linear autoencoder (left) and PCA (right)"), "z₂", "z₁")


def parallel_figure(rows: list[dict], settings: list[str], metrics: list[str], color: str | None = None,
                    lang: str = DEFAULT) -> go.Figure:
    """Parallel coordinates of runs (``rows`` of :func:`aelab.sweeps.hparam_rows`): an axis per setting, then
    per metric, a line per run coloured by ``color`` (default: the first metric). Drag along an axis to
    brush: only the runs in the range stay lit. Text settings get an axis of their values."""
    dims = []
    for key in [*settings, *metrics]:
        values = [r.get(key) for r in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            dims.append(dict(label=key, values=[float(v) for v in values]))
        else:   # categories (a recipe, an optimiser, a boolean): their place in the sorted list
            cats = sorted({str(v) for v in values})
            dims.append(dict(label=key, values=[cats.index(str(v)) for v in values],
                             tickvals=list(range(len(cats))), ticktext=cats))
    color = color or (metrics[0] if metrics else None)
    line = dict(color=[r[color] for r in rows], colorscale="Viridis", showscale=True,
                colorbar=dict(title=color)) if color else {}
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    fig.update_layout(title=gettext_for(lang)("{n} runs: settings against final metrics (drag along an axis to "
                                              "filter)").format(n=len(rows)),
                      template="plotly_white", height=420, margin=dict(l=60, r=60, t=80, b=30))
    return fig
