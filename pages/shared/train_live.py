"""The Train page's view of a job: progress, curves and the previews, live while it trains, then played back."""
from __future__ import annotations

import os

import numpy as np
import streamlit as st

from aelab import figures
from aelab.jobs import registry
from aelab.presets import BOOK_VAL_LOSS
from pages.shared import state, widgets


def last(history: dict, k: str, fmt: str = ".4f") -> str:
    return format(history[k][-1], fmt) if history.get(k) else "–"


def draw_live(job, snap) -> None:
    """Progress, curves and the per-epoch preview (reconstructions, or a GAN's fixed-noise samples)."""
    cfg = job.cfg
    family = cfg.model.family
    if snap.status == "starting":
        st.info("Starting: loading the data set and building the model…", icon=":material/hourglass_top:")
    elif snap.status == "queued":
        st.info(f"Queued: place {snap.position} in line. The server trains {registry().max_jobs} job(s) at once "
                "(AELAB_MAX_JOBS); yours starts when a slot is free.", icon=":material/schedule:")
    done = (max(snap.epoch - 1, 0) + snap.batch / snap.batches) / snap.epochs if snap.batches else 0.0
    label = {"running": f"Epoch {snap.epoch}/{snap.epochs} · batch {snap.batch}/{snap.batches} · "
                        f"loss {snap.loss:.4f}", "finished": "Finished", "stopped": "Stopped",
             "timeout": "Stopped at this server's time limit for a job", "failed": "Failed",
             "starting": "Starting", "queued": "Queued", "cancelled": "Cancelled"}[snap.status]
    st.progress(min(done, 1.0) if snap.status != "finished" else 1.0, text=label)
    h = snap.history
    cols = st.columns(5 if h.get("val_rounded_acc") else 4)
    cols[0].metric("Epochs done", f"{h['epoch'][-1]:g}" if h.get("epoch") else "0")
    if family == "gan":
        cols[1].metric("Discriminator loss", last(h, "d_loss"), help="Training, last epoch")
        cols[2].metric("Generator loss", last(h, "g_loss"), help="Training, last epoch")
    elif family == "classifier":
        cols[1].metric("Training loss", last(h, "loss"))
        cols[2].metric("Validation accuracy", last(h, "val_acc", ".2%"))
    else:
        cols[1].metric("Training loss", last(h, "loss"))
        cols[2].metric("Validation loss", last(h, "val_loss"))
        if h.get("val_rounded_acc"):
            cols[3].metric("Rounded accuracy", last(h, "val_rounded_acc", ".2%"),
                           help="Validation pixels equal once both images are rounded to 0 or 1 (the book's metric)")
    cols[-1].metric("Seconds / epoch", f"{np.median(h['seconds']):.2f}" if h.get("seconds") else "–")
    left, right = st.columns([3, 2])
    if family == "gan":
        left.plotly_chart(figures.gan_figure(h, snap.traces, cfg.train.epochs), key=f"gan-{job.id}")
    else:
        reference = BOOK_VAL_LOSS.get(cfg.preset) if cfg.data.name == "fashion-mnist" else None
        left.plotly_chart(figures.loss_figure(h, snap.trace, reference, "book, epoch 10", cfg.total_epochs,
                                              cfg.phase_labels()),
                          key=f"loss-{job.id}")
        terms = figures.terms_figure(h)
        if terms is not None:
            right.plotly_chart(terms, key=f"terms-{job.id}")
    if family == "autoencoder" and cfg.model.variational:
        a, b = st.columns([3, 2])
        a.plotly_chart(figures.beta_figure(h, snap.traces, cfg.total_epochs), key=f"beta-{job.id}")
        b.metric("Active units", f"{h['active_units'][-1]:g} of {cfg.model.latent}" if h.get("active_units") else "–",
                 help="Latent dimensions whose mean KL to the prior exceeds 0.01 nats on 1,000 validation images, "
                      "after each epoch. Falling towards 0: posterior collapse (the decoder ignores the codes).")
        b.caption({"constant": f"β = {cfg.model.beta:g} throughout.",
                   "warmup": f"β rises from 0 to {cfg.model.beta:g} over {cfg.train.beta_epochs:g} epochs.",
                   "cyclical": f"β cycles every {cfg.train.beta_epochs:g} epochs: from 0 up to {cfg.model.beta:g} "
                               "over the first half, then held."}[cfg.train.beta_schedule])
    with right:
        draw_frames(job, snap)
    if snap.status == "failed":
        st.error(f"Training failed: {snap.error}", icon=":material/error:")


def draw_frames(job, snap) -> None:
    """The latest preview while training; afterwards a slider plays the epochs back."""
    if not snap.frames:
        return
    frame = len(snap.frames) - 1
    if snap.done and len(snap.frames) > 1:
        frame = st.slider("Epoch", 0, len(snap.frames) - 1, len(snap.frames) - 1, key=f"frame-{job.id}",
                          help="Play training back: the preview after each epoch (0 = before training).")
    images = snap.frames[frame]
    if snap.preview_input is not None:
        st.markdown(f"**Fixed validation images** (top) **and their reconstructions** (bottom), epoch {frame}")
        images = np.concatenate([snap.preview_input, images])
        ncols = len(snap.preview_input)
    else:
        st.markdown(f"**The same {len(images)} random codes through the generator**, epoch {frame}")
        ncols = 8
    widgets.images(images, ncols)


def job_panel() -> None:
    job = registry().get(st.session_state.get("job_id"))
    if job is None:
        return
    st.divider()
    st.subheader(f"Run {job.name}" if job.name else "Current training")
    if not job.finished:
        @st.fragment(run_every=float(os.environ.get("AELAB_LIVE_REFRESH_S", "2.0")))
        def live():
            snap = job.snapshot()
            queued = snap.status == "queued"
            if st.button("Cancel" if queued else "Stop", key="stop", icon=":material/stop:",
                         help="Leaves the queue." if queued else "Stops after the current batch; the epochs done "
                                                                  "are saved."):
                registry().cancel(job)
            draw_live(job, snap)
            if snap.done:
                st.rerun()
        live()
        return
    snap = job.snapshot()
    if snap.run_name and st.session_state.get("activated_job") != job.id:
        state.set_active_run("run", snap.run_name)
        st.session_state["activated_job"] = job.id
        st.rerun()   # redraw the sidebar with the new active run
    if snap.run_name:
        st.success(f"Run **{snap.run_name}** saved ({snap.status}) and is now the active run. "
                   f"Look at it on the Reconstructions, Latent space or Generate pages.", icon=":material/check:")
    draw_live(job, snap)
