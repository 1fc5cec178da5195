"""Reconstructions: originals, corrupted inputs, reconstructions, metrics and the worst cases."""
import numpy as np
import streamlit as st
import torch

from aelab import figures, metrics
from pages import common

common.through_router()


@st.cache_data(show_spinner="Scoring the test set…", max_entries=8)
def report(path: str, mtime: float):
    run = common.run_at(path)
    ds = common.dataset(run.config.data.name)
    return metrics.reconstruction_report(common.model_of(run), ds.x_test, ds.y_test, ds.class_names, n_worst=20)


st.title("Reconstructions")
run, ds = common.run_and_data()
if run and ds and common.explain_missing(run, "reconstruct"):
    with common.guard("Reconstructing"):
        model = common.model_of(run)
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
        pool = np.flatnonzero(np.isin(ds.y_test.numpy(), [ds.class_names.index(c) for c in classes])) \
            if classes else np.arange(len(ds.x_test))
        idx = np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False)
        inputs, recon = metrics.reconstruct(model, ds.x_test[idx], corruption=corruption, seed=seed)
        originals = ds.x_test[idx][:, 0].float().numpy() / 255
        rows = [originals] + ([inputs[:, 0].clamp(0, 1).numpy()] if corruption else []) + [recon[:, 0].numpy()]
        labels = "Originals, corrupted inputs and reconstructions" if corruption else "Originals and reconstructions"
        st.markdown(f"**{labels}** (one row each)")
        st.image(figures.image_grid(np.concatenate(rows), ncols=len(idx)), width="stretch", output_format="PNG")
        if corruption:
            per = metrics.per_image_metrics(torch.from_numpy(originals[:, None]), recon)
            st.caption(f"At this noise level: mean BCE {per['bce'].mean():.4f}, PSNR {per['psnr'].mean():.2f} dB "
                       f"against the clean originals.")

        st.subheader("Test-set metrics")
        rep = report(*common.cache_key(run))
        k = st.columns(4)
        k[0].metric("BCE (per pixel)", f"{rep.means['bce']:.4f}")
        k[1].metric("MSE", f"{rep.means['mse']:.4f}")
        k[2].metric("PSNR", f"{rep.means['psnr']:.2f} dB")
        k[3].metric("SSIM", f"{rep.means['ssim']:.3f}")
        left, right = st.columns([3, 2])
        metric = left.radio("Per-class metric", ["bce", "mse", "psnr", "ssim"], horizontal=True, key="rec_metric")
        left.plotly_chart(figures.per_class_figure(rep.per_class, metric))
        right.markdown("**The 20 worst-reconstructed test images** (each original above its reconstruction)")
        w_in, w_out = metrics.reconstruct(model, ds.x_test[rep.worst])
        pairs = np.stack([w_in[:, 0].numpy().reshape(2, 10, *w_in.shape[2:]),
                          w_out[:, 0].numpy().reshape(2, 10, *w_out.shape[2:])], axis=1)   # (2, 2, 10, H, W)
        right.image(figures.image_grid(pairs.reshape(-1, *w_in.shape[2:]), ncols=10), width="stretch", output_format="PNG")
        right.caption(", ".join(f"#{i} {ds.class_names[ds.y_test[i]]}" for i in rep.worst[:5]) + ", …")
