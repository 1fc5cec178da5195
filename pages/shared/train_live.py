"""The Train page's view of a job: progress, curves and the previews, live while it trains, then played back."""
from __future__ import annotations

import os

import numpy as np
import streamlit as st

from aelab import figures
from aelab.jobs import registry
from pages.shared import state, widgets
from pages.shared.i18n import _, current, error_message, status_label


def last(history: dict, k: str, fmt: str = ".4f") -> str:
    return format(history[k][-1], fmt) if history.get(k) else "–"


def draw_live(job, snap) -> None:
    """Progress, curves and the per-epoch preview (reconstructions, or a GAN's fixed-noise samples)."""
    cfg = job.cfg
    family = cfg.model.family
    if snap.status == "starting":
        st.info(_("Starting: loading the data set and building the model…"), icon=":material/hourglass_top:")
    elif snap.status == "queued":
        st.info(_("Queued: place {place} in line. The server trains {jobs} job(s) at once (AELAB_MAX_JOBS); "
                  "yours starts when a slot is free.").format(place=snap.position, jobs=registry().max_jobs),
                icon=":material/schedule:")
    done = (max(snap.epoch - 1, 0) + snap.batch / snap.batches) / snap.epochs if snap.batches else 0.0
    label = _("Epoch {epoch}/{epochs} · batch {batch}/{batches} · loss {loss:.4f}").format(
        epoch=snap.epoch, epochs=snap.epochs, batch=snap.batch, batches=snap.batches, loss=snap.loss) \
        if snap.status == "running" else status_label(snap.status)
    st.progress(min(done, 1.0) if snap.status != "finished" else 1.0, text=label)
    h = snap.history
    cols = st.columns(5 if h.get("val_rounded_acc") else 4)
    cols[0].metric(_("Epochs done"), f"{h['epoch'][-1]:g}" if h.get("epoch") else "0")
    if family == "gan":
        cols[1].metric(_("Discriminator loss"), last(h, "d_loss"), help=_("Training, last epoch"))
        cols[2].metric(_("Generator loss"), last(h, "g_loss"), help=_("Training, last epoch"))
    elif family == "classifier":
        cols[1].metric(_("Training loss"), last(h, "loss"))
        cols[2].metric(_("Validation accuracy"), last(h, "val_acc", ".2%"))
    else:
        cols[1].metric(_("Training loss"), last(h, "loss"))
        cols[2].metric(_("Validation loss"), last(h, "val_loss"))
        if h.get("val_rounded_acc"):
            cols[3].metric(_("Rounded accuracy"), last(h, "val_rounded_acc", ".2%"),
                           help=_("Validation pixels equal once both images are rounded to 0 or 1 (the book's metric)"))
    cols[-1].metric(_("Seconds / epoch"), f"{np.median(h['seconds']):.2f}" if h.get("seconds") else "–")
    left, right = st.columns([3, 2])
    left.plotly_chart(figures.training_figure(cfg, h, snap.traces, lang=current()), key=f"curves-{job.id}")
    if family != "gan":
        terms = figures.terms_figure(h, lang=current())
        if terms is not None:
            right.plotly_chart(terms, key=f"terms-{job.id}")
    if family == "autoencoder" and cfg.model.variational:
        a, b = st.columns([3, 2])
        a.plotly_chart(figures.beta_figure(h, snap.traces, cfg.total_epochs, lang=current()), key=f"beta-{job.id}")
        b.metric(_("Active units"), _("{active:g} of {latent}").format(active=h["active_units"][-1],
                                                                       latent=cfg.model.latent)
                 if h.get("active_units") else "–",
                 help=_("Latent dimensions whose mean KL to the prior exceeds 0.01 nats on 1,000 validation images, "
                      "after each epoch. Falling towards 0: posterior collapse (the decoder ignores the codes)."))
        b.caption({"constant": _("β = {beta:g} throughout."),
                   "warmup": _("β rises from 0 to {beta:g} over {epochs:g} epochs."),
                   "cyclical": _("β cycles every {epochs:g} epochs: from 0 up to {beta:g} over the first half, then "
                                 "held.")}[cfg.train.beta_schedule].format(beta=cfg.model.beta,
                                                                          epochs=cfg.train.beta_epochs))
    with right:
        draw_frames(job, snap)
    if snap.status == "failed":
        st.error(_("Training failed: {reason}").format(reason=error_message(snap.error)), icon=":material/error:")


def planned_chart(cfg) -> None:
    """Before Start: the empty chart the job's losses will be drawn in. (The browser also loads the chart code,
    4.7 MB here, now rather than after Start: that took 1.4 s of the first live point.)"""
    st.divider()
    st.caption(_("Once you press Start training, the losses are drawn here as the model learns."))
    left, __ = st.columns([3, 2])
    left.plotly_chart(figures.training_figure(cfg, {}, {}, lang=current()), key="planned-curves")


def draw_frames(job, snap) -> None:
    """The latest preview while training; afterwards a slider plays the epochs back."""
    if not snap.frames:
        return
    frame = len(snap.frames) - 1
    if snap.done and len(snap.frames) > 1:
        frame = st.slider(_("Epoch"), 0, len(snap.frames) - 1, len(snap.frames) - 1, key=f"frame-{job.id}",
                          help=_("Play training back: the preview after each epoch (0 = before training)."))
    images = snap.frames[frame]
    if snap.preview_input is not None:
        st.markdown(_("**Fixed validation images** (top) **and their reconstructions** (bottom), epoch {epoch}")
                    .format(epoch=frame))
        images = np.concatenate([snap.preview_input, images])
        ncols = len(snap.preview_input)
    else:
        st.markdown(_("**The same {n} random codes through the generator**, epoch {epoch}").format(
            n=len(images), epoch=frame))
        ncols = 8
    widgets.images(images, ncols)


def job_panel(planned=None) -> None:
    """This visitor's job, live or finished; without one, the chart a job of ``planned`` (a config) would fill."""
    job = registry().get(st.session_state.get("job_id"))
    if job is None:
        if planned is not None:
            planned_chart(planned)
        return
    st.divider()
    st.subheader(_("Run {name}").format(name=job.name) if job.name else _("Current training"))
    if not job.finished:
        @st.fragment(run_every=float(os.environ.get("AELAB_LIVE_REFRESH_S", "2.0")))
        def live():
            snap = job.snapshot()
            queued = snap.status == "queued"
            if st.button(_("Cancel") if queued else _("Stop"), key="stop", icon=":material/stop:",
                         help=_("Leaves the queue.") if queued else _("Stops after the current batch; the epochs "
                                                                    "done are saved.")):
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
        st.success(_("Run **{run}** saved ({status}) and is now the active run. Look at it on the Reconstructions, "
                     "Latent space or Generate pages.").format(run=snap.run_name, status=status_label(snap.status)),
                   icon=":material/check:")
    draw_live(job, snap)
