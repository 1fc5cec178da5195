"""Reconstructions: originals, corrupted inputs, reconstructions, metrics and the worst cases."""
import streamlit as st

from aelab import figures, metrics
from aelab.runs import Run
from pages.shared import state, widgets
from pages.shared.sidebar import through_router

through_router()


def sample_section(run: Run, ds, model) -> None:
    """Random test images (by class, reshuffled, optionally corrupted) above their reconstructions."""
    m = run.config.model
    c = st.columns([3, 1, 1, 1])
    classes = c[0].multiselect("Classes", list(ds.class_names), key="rec_classes",
                               placeholder="all classes", help="Show only these classes.")
    n = c[1].slider("Images", 4, 40, 12, step=4, key="rec_n", help="How many test images to show.")
    seed = c[2].number_input("Seed", 0, 10_000, 0, key="rec_seed", help="Which random test images.")
    if c[3].button("Reshuffle", icon=":material/shuffle:", help="Draw other images"):
        st.session_state["rec_seed"] = seed + 1
        st.rerun()
    corruption = None
    if m.noise != "none":
        level = st.slider(f"{'σ of the Gaussian noise' if m.noise == 'gaussian' else 'Dropout rate'} fed to the "
                          f"model (trained with {m.noise_level})", 0.0, 0.95, float(m.noise_level), 0.05,
                          key="rec_noise", help="See how the reconstruction degrades as the input gets noisier.")
        corruption = (m.noise, level)
    sample = metrics.reconstruct_sample(model, ds.x_test, ds.y_test, n, seed,
                                        [ds.class_names.index(c) for c in classes], corruption)
    labels = "Originals, corrupted inputs and reconstructions" if corruption else "Originals and reconstructions"
    st.markdown(f"**{labels}** (one row each)")
    widgets.images(sample.rows(), ncols=len(sample.index))
    if corruption:
        st.caption(f"At this noise level: mean BCE {sample.bce:.4f}, PSNR {sample.psnr:.2f} dB "
                   f"against the clean originals.")


def metrics_section(run: Run, ds, model) -> None:
    """Test-set means, per-class errors and the worst-reconstructed images."""
    st.subheader("Test-set metrics")
    rep = widgets.task_result(widgets.task("reconstruction", run), len(ds.x_test) / 5_000,
                              f"Scoring the {len(ds.x_test):,} test images")
    if rep is None:
        return
    k = st.columns(4)
    k[0].metric("BCE (per pixel)", f"{rep.means['bce']:.4f}")
    k[1].metric("MSE", f"{rep.means['mse']:.4f}")
    k[2].metric("PSNR", f"{rep.means['psnr']:.2f} dB")
    k[3].metric("SSIM", f"{rep.means['ssim']:.3f}")
    left, right = st.columns([3, 2])
    metric = left.radio("Per-class metric", ["bce", "mse", "psnr", "ssim"], horizontal=True, key="rec_metric")
    left.plotly_chart(figures.per_class_figure(rep.per_class, metric))
    right.markdown(f"**The {len(rep.worst)} worst-reconstructed test images** (each original above its "
                   "reconstruction)")
    images, ncols = metrics.pairs(model, ds.x_test[rep.worst])
    widgets.images(images, ncols, container=right)
    right.caption(", ".join(f"#{i} {ds.class_names[ds.y_test[i]]}" for i in rep.worst[:5]) + ", …")


st.title("Reconstructions")
run, ds = widgets.run_and_data()
if run and ds and widgets.explain_missing(run, "reconstruct"):
    with widgets.guard("Reconstructing"):
        model = state.model_of(run)
        sample_section(run, ds, model)
        metrics_section(run, ds, model)
