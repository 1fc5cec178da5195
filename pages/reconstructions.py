"""Reconstructions: originals, corrupted inputs, reconstructions, metrics and the worst cases."""
import streamlit as st

from aelab import figures, metrics
from aelab.runs import Run
from pages.shared import state, widgets
from pages.shared.i18n import _, class_names, current
from pages.shared.sidebar import through_router

through_router()


def sample_section(run: Run, ds, model) -> None:
    """Random test images (by class, reshuffled, optionally corrupted) above their reconstructions."""
    m = run.config.model
    c = st.columns([3, 1, 1, 1])
    shown = dict(zip(ds.class_names, class_names(run.config.data.name, ds.class_names)))
    classes = c[0].multiselect(_("Classes"), list(ds.class_names), key="rec_classes", format_func=shown.get,
                               placeholder=_("all classes"), help=_("Show only these classes."))
    n = c[1].slider(_("Images"), 4, 40, 12, step=4, key="rec_n", help=_("How many test images to show."))
    seed = c[2].number_input(_("Seed"), 0, 10_000, 0, key="rec_seed", help=_("Which random test images."))
    if c[3].button(_("Reshuffle"), icon=":material/shuffle:", help=_("Draw other images")):
        st.session_state["rec_seed"] = seed + 1
        st.rerun()
    corruption = None
    if m.noise != "none":
        label = (_("σ of the Gaussian noise fed to the model (trained with {level})") if m.noise == "gaussian" else
                 _("Dropout rate fed to the model (trained with {level})")).format(level=m.noise_level)
        level = st.slider(label, 0.0, 0.95, float(m.noise_level), 0.05, key="rec_noise",
                          help=_("See how the reconstruction degrades as the input gets noisier."))
        corruption = (m.noise, level)
    sample = metrics.reconstruct_sample(model, ds.x_test, ds.y_test, n, seed,
                                        [ds.class_names.index(c) for c in classes], corruption)
    st.markdown(_("**Originals, corrupted inputs and reconstructions** (one row each)") if corruption else
                _("**Originals and reconstructions** (one row each)"))
    widgets.images(sample.rows(), ncols=len(sample.index))
    if corruption:
        st.caption(_("At this noise level: mean BCE {bce:.4f}, PSNR {psnr:.2f} dB against the clean originals.")
                   .format(bce=sample.bce, psnr=sample.psnr))


def metrics_section(run: Run, ds, model) -> None:
    """Test-set means, per-class errors and the worst-reconstructed images."""
    st.subheader(_("Test-set metrics"))
    rep = widgets.task_result(widgets.task("reconstruction", run), len(ds.x_test) / 5_000,
                              _("Scoring the {n:,} test images").format(n=len(ds.x_test)))
    if rep is None:
        return
    k = st.columns(4)
    k[0].metric(_("BCE (per pixel)"), f"{rep.means['bce']:.4f}")
    k[1].metric("MSE", f"{rep.means['mse']:.4f}")
    k[2].metric("PSNR", f"{rep.means['psnr']:.2f} dB")
    k[3].metric("SSIM", f"{rep.means['ssim']:.3f}")
    left, right = st.columns([3, 2])
    metric = left.radio(_("Per-class metric"), ["bce", "mse", "psnr", "ssim"], horizontal=True, key="rec_metric",
                        format_func=str.upper)
    left.plotly_chart(figures.per_class_figure(rep.per_class, metric, class_names(ds.name, list(rep.per_class)),
                                               lang=current()))
    right.markdown(_("**The {n} worst-reconstructed test images** (each original above its reconstruction)")
                   .format(n=len(rep.worst)))
    images, ncols = metrics.pairs(model, ds.x_test[rep.worst])
    widgets.images(images, ncols, container=right)
    names = class_names(run.config.data.name, ds.class_names)
    right.caption(", ".join(f"#{i} {names[ds.y_test[i]]}" for i in rep.worst[:5]) + ", …")


st.title(_("Reconstructions"))
run, ds = widgets.run_and_data()
if run and ds and widgets.explain_missing(run, "reconstruct"):
    with widgets.guard(_("Reconstructing")):
        model = state.model_of(run)
        sample_section(run, ds, model)
        metrics_section(run, ds, model)
