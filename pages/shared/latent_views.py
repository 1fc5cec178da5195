"""The Latent space page's lower sections: decode any point of the plane, the time-lapse of the codes, and
what the code units do."""
from __future__ import annotations

import numpy as np
import streamlit as st

from aelab import diagnostics, figures, latent
from aelab.runs import Run
from pages.shared import state, widgets
from pages.shared.i18n import _, class_names, current

TSNE_SECONDS_PER_POINT = 1.7 / 1_000   # measured here: 5,000 30-D codes in ~8 s at 750 iterations
UMAP_SECONDS_PER_POINT = 1.6 / 1_000   # 10,000 30-D codes in ~16 s, plus ~5 s to import umap in a new worker


def projection_seconds(method: str, n: int, options: dict) -> float:
    """About how long projecting ``n`` codes takes here (for the progress bar)."""
    if method == "umap":
        return 5 + n * UMAP_SECONDS_PER_POINT
    return n * TSNE_SECONDS_PER_POINT * options.get("max_iter", 750) / 750


def decode_anywhere(model, proj, codes, bounds, method: str) -> None:
    """Two sliders (or a click on the plane above) pick a point; its code is decoded live."""
    st.subheader(_("Decode any point of the plane"))
    x0, x1, y0, y1 = bounds
    planes = ["projection", "prior"] if model.is_variational else ["projection"]
    names = {"projection": _("the {method} plane above").format(method=latent.PROJECTIONS[method]),
             "prior": _("two dimensions of the VAE's prior")}
    plane = st.radio(_("Plane"), planes, horizontal=True, key="dec_plane", label_visibility="collapsed",
                     format_func=names.get) if len(planes) > 1 else planes[0]
    left, right = st.columns([3, 1])
    with left:
        if plane == "prior":
            c = st.columns(2)
            i = c[0].number_input(_("Dimension on x"), 0, model.latent_dim - 1, 0, key="dec_i")
            j = c[1].number_input(_("Dimension on y"), 0, model.latent_dim - 1, min(1, model.latent_dim - 1),
                                  key="dec_j")
            zi = st.slider(f"z[{i}]", -3.0, 3.0, 0.0, 0.1, key="dec_zi")
            zj = st.slider(f"z[{j}]", -3.0, 3.0, 0.0, 0.1, key="dec_zj")
            code = np.zeros(model.latent_dim, np.float32)
            code[i], code[j] = zi, zj
            caption = _("z = 0 except z[{i}] = {zi:.1f}, z[{j}] = {zj:.1f} (the prior is N(0, I))").format(
                i=i, j=j, zi=zi, zj=zj)
        else:
            for k, lo, hi in (("dec_x", x0, x1), ("dec_y", y0, y1)):
                value = st.session_state.get(k)
                if value is None or not lo <= value <= hi:
                    st.session_state[k] = (lo + hi) / 2
            x = st.slider("x", x0, x1, key="dec_x", help=_("Or click anywhere on the plane above."))
            y = st.slider("y", y0, y1, key="dec_y")
            code = latent.code_at((x, y), proj, codes)
            caption = (_("({x:.2f}, {y:.2f}) through the inverse PCA transform") if method == "pca" else
                       _("the mean code of the 10 test images nearest to ({x:.2f}, {y:.2f}) on the {method} map (a "
                         "map without an inverse)")).format(x=x, y=y, method=latent.PROJECTIONS[method])
    image = latent.decode_codes(model, code[None])
    right.image(figures.image_grid(image, ncols=1, scale=max(1, 160 // image.shape[-1])), caption=caption,
                output_format="PNG")


@st.cache_data(show_spinner=False, max_entries=4, hash_funcs=state.BY_RUN)
def timeline_of(run: Run) -> dict:
    return run.timeline()


@st.cache_resource(max_entries=4, show_spinner=False, hash_funcs=state.BY_RUN)
def timelapse_figure(run: Run, method: str, class_names: tuple, title: str, lang: str, _coords: np.ndarray,
                     _labels: np.ndarray):
    """The animated figure of a run's time-lapse, built once for every visitor: building it costs the server
    about a second, and a figure is only read afterwards (by ``st.plotly_chart``). The coordinates are those
    of the task ("timelapse", run, method), so run and method (and the language's names) are the key."""
    return figures.timelapse_figure(_coords, _labels, class_names, title, lang=lang)


def timelapse_section(run: Run, ds) -> None:
    """Codes of fixed validation images after every epoch, projected in comparable frames and animated."""
    timeline = timeline_of(run)
    if "codes" not in timeline:
        return
    codes = timeline["codes"]
    st.subheader(_("How the codes moved during training"))
    method = st.radio(_("Frames"), ["pca", "tsne"], horizontal=True, key="lapse_method",
                      format_func={"pca": _("PCA fitted on the final codes"),
                                   "tsne": _("t-SNE, warm-started and aligned")}.get,
                      help=_("PCA: one fixed basis for every epoch. t-SNE: each epoch starts from the previous map and "
                           "is rotated onto it (Procrustes), so only real changes move points."))
    task = widgets.task("timelapse", run, method)
    if method == "pca":
        task.join(30)   # a warm worker projects every epoch in about a second
    frames = widgets.task_result(task, len(codes) * codes.shape[1] * TSNE_SECONDS_PER_POINT,
                                 _("t-SNE of {n:,} codes for each of {epochs} epochs").format(
                                     n=codes.shape[1], epochs=len(codes)))
    if frames is None:
        return
    labels = timeline.get("code_labels")
    labels = labels if labels is not None else np.zeros(codes.shape[1], np.int64)
    names = tuple(class_names(ds.name, ds.class_names))
    title = _("{n:,} validation codes after each epoch · {run}").format(n=frames.shape[1], run=run.name)
    st.plotly_chart(timelapse_figure(run, method, names, title, current(), frames, labels), key="lapse_plot")
    st.caption(_("Press ▶ to play, or drag the epoch slider. Epoch 0 is the untrained network."))


def units_section(run: Run) -> None:
    """The distribution of the code activations and of each unit's mean (the book's sparse-AE figures), and
    for a VAE each latent dimension's KL to the prior with the number of active units."""
    st.subheader(_("What the code units do"))
    d = widgets.task_result(widgets.task("diagnostics", run), 5, _("Encoding 2,000 test images"))
    if d is None:
        return
    left, right = st.columns(2)
    everything, means = figures.activation_figures(d.codes, d.sparsity_target, lang=current())
    left.plotly_chart(everything, key="units_all")
    right.plotly_chart(means, key="units_means")
    if d.kl_per_dim is not None:
        st.plotly_chart(figures.kl_figure(d.kl_per_dim, diagnostics.ACTIVE_KL_NATS, lang=current()), key="units_kl")
        st.caption(_("{active} of {dims} latent dimensions carry information (mean KL to the prior above {nats} nats "
                     "over {n:,} test images); the others have collapsed onto the prior, and the decoder ignores "
                     "them.").format(active=d.active_units, dims=len(d.kl_per_dim), nats=diagnostics.ACTIVE_KL_NATS,
                                     n=len(d.codes)))
    else:
        st.caption(_("Codes of {n:,} test images. A sparse code piles up near 0, with each unit's mean near its "
                     "target; a plain code spreads out.").format(n=len(d.codes)))
