"""The Latent space page's chapter-17 sections: semantic hashing, and PCA against autoencoders (the book's 3-D
demo, and a comparison on images run as a job)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from aelab import data, diagnostics, dimred, figures
from aelab.config import COMPARE_KS
from aelab.jobs import registry
from aelab.runs import Comparison, Run, RunStore
from pages.shared import state, widgets
from pages.shared.i18n import _, class_names, current, error_message

KS_OFFERED = [1, 2, 3, 5, 10, 16, 20, 30, 50, 64, 100, 128]


def hashing_section(run: Run, ds) -> None:
    """Sigmoid codes read as bits: the test images sharing a hash with a chosen one, and those one bit away."""
    if not diagnostics.hashable(run.config.model) or run.config.model.latent > 62:
        return
    st.subheader(_("Semantic hashing: codes as bits"))
    hashed = widgets.task_result(widgets.task("hashes", run), 5, _("Hashing the test images"))
    if hashed is None:
        return
    table, bits = hashed["hashes"], hashed["bits"]
    st.caption(_("Each code unit rounded to 0 or 1 gives a {bits}-bit hash of the image. {share:.0%} of the code "
                 "activations are already within {margin} of 0 or 1 (noise before the code layer pushes them there). "
                 "Images that look alike should share a hash, so a search needs to look in one bucket only.").format(
        bits=bits, share=hashed["binary_share"], margin=diagnostics.BINARY_MARGIN))
    query = int(st.number_input(_("Test image (0 to {last})").format(last=len(table) - 1), 0, len(table) - 1, 0,
                                key="hash_query"))
    found = diagnostics.hash_lookup(table, query)
    names = class_names(ds.name, ds.class_names)
    left, right = st.columns([1, 6])
    left.image(data.pixels(ds.x_test[[query]])[0], caption=names[int(ds.y_test[query])], width=84)
    right.markdown(_("**Hash `{hash}`**: {same} other test images share it, {near} are one bit away ({buckets:,} "
                     "distinct hashes among {n:,} images).").format(
        hash=f"{found.hash:0{bits}b}", same=len(found.same), near=len(found.near), buckets=found.buckets,
        n=len(table)))
    for title, idx in ((_("Same hash"), found.same), (_("Hamming distance 1"), found.near)):
        if len(idx):
            shown = idx[:20]
            classes = data.class_counts(ds.y_test, idx, names)
            st.markdown(_("**{title}** (first {shown} of {n}): {classes}").format(
                title=title, shown=len(shown), n=len(idx), classes=", ".join(f"{n} {c}" for c, n in classes.items())))
            widgets.images(data.pixels(ds.x_test[shown]), ncols=20)


def book_demo_section() -> None:
    """The book's linear autoencoder on its 3-D point cloud, beside PCA (a small task: about a second)."""
    if not st.toggle(_("The book's demo: PCA with a linear autoencoder on a 3-D point cloud"), key="book3d",
                     help=_("Trains the book's 3 → 2 → 3 linear autoencoder in the background (about a second).")):
        return
    with st.container(border=True):
        demo = widgets.task_result(widgets.task("book_3d", 42), 5, _("Training the 3 → 2 → 3 linear autoencoder"))
        if demo is None:
            return
        cloud, codes = figures.book_3d_figures(demo.points, demo.ae_codes, demo.pca_codes, lang=current())
        left, right = st.columns([2, 3])
        left.plotly_chart(cloud, key="book3d_cloud")
        right.plotly_chart(codes, key="book3d_codes")
        st.caption(_("Dense 3 → 2 and 2 → 3 with no activation, MSE, SGD at 1.5, 20 epochs of batches of 32 (the "
                     "book's recipe). Its plane is PCA's to within {angle:.1f}° (largest principal angle); "
                     "reconstruction MSE {ae:.4f} against PCA's {pca:.4f}, the best any plane can do. The two maps "
                     "differ by a linear change of axes: an autoencoder's code has no preferred basis, PCA's axes are "
                     "ordered by variance.").format(angle=demo.max_angle_deg, ae=demo.ae_mse, pca=demo.pca_mse))


def comparison_section(data_name: str) -> None:
    """PCA vs linear vs nonlinear autoencoders on ``data_name``: saved comparisons, and a form to run one."""
    st.subheader(_("PCA against autoencoders"))
    st.markdown(_("A linear autoencoder (no activations, linear output, MSE) learns the same subspace as PCA; a "
                "nonlinear one can bend it, and reconstructs better with the same code size."))
    book_demo_section()
    comparisons, problems = state.scan_stores(RunStore.scan_comparisons)
    for err in problems.values():
        st.warning(_("Skipped a damaged comparison: {reason}").format(reason=error_message(err)),
                   icon=":material/warning:")
    mine = {k: c for k, c in comparisons.items() if c.meta["data"] == data_name}
    comparison_form(data_name)
    widgets.follow_job("cmp_job_id", "cmp_pick", _("comparison"), _("autoencoders trained"),
                       _("Ends the comparison during the current autoencoder; the runs trained so far are kept."))
    if mine:
        key = st.selectbox(_("Comparison"), list(mine), key="cmp_pick", format_func=lambda k: mine[k].name)
        show_comparison(mine[key])


def comparison_form(data_name: str) -> None:
    with st.form("cmp_form"):
        c = st.columns([3, 1])
        ks = c[0].multiselect(_("Code sizes k"), KS_OFFERED, default=list(COMPARE_KS), key="cmp_ks")
        epochs = c[1].number_input(_("Epochs"), 1, 100, 10, key="cmp_epochs", help=_("Of every autoencoder."))
        start = st.form_submit_button(_("Compare"), icon=":material/play_arrow:",
                                      help=_("Trains a linear and a stacked autoencoder per code size, in the "
                                           "background; each is saved as a run."))
    if start:
        with widgets.guard(_("Starting the comparison")):
            job = registry().start_comparison(data_name, tuple(ks), int(epochs), state.user_runs_dir(),
                                              owner=state.session_id())
            st.session_state["cmp_job_id"] = job.id


def show_comparison(comparison: Comparison) -> None:
    rows = dimred.table(comparison)
    st.plotly_chart(figures.reduction_figure(rows, lang=current()), key="cmp_chart")
    names = {"pca": "PCA", "linear": _("linear AE"), "nonlinear": _("nonlinear AE"),
             "max_angle_deg": _("linear AE vs PCA, largest angle (°)")}
    frame = pd.DataFrame(rows, columns=["k", *names]).rename(columns=names).set_index("k")
    st.dataframe(frame.style.format("{:.5f}").format("{:.1f}", subset=[names["max_angle_deg"]]), key="cmp_table")
    epochs = comparison.meta.get("epochs") or 10
    st.caption(_("Test-set MSE per pixel on {n:,} images, outputs not clipped. PCA is fitted on the training images; "
                 "each autoencoder trained {epochs} epochs and was saved as a run ({name}-linear-k…, -nonlinear-k…) "
                 "where the comparison ran (the shipped example keeps only its table). An angle below 5° means the "
                 "linear AE found PCA's subspace; a larger one, that it has not converged along its weakest "
                 "directions yet.").format(n=comparison.meta.get("n_test", 0), epochs=epochs, name=comparison.name))
