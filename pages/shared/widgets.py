"""Small UI pieces every page uses: error reporting, task progress, run labels, image grids."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import streamlit as st

import aelab
from aelab import figures
from aelab.data import is_file_name
from aelab.jobs import JobRefused
from aelab.runs import Run
from pages.shared import state
from pages.shared.i18n import _, error_message, status_label


@contextlib.contextmanager
def guard(what: str | None = None):
    """Show any failure as a readable message instead of a traceback (``what``: the step, as shown)."""
    what = what or _("This step")
    try:
        yield
    except (aelab.ConfigError, aelab.DataError, aelab.RunError, aelab.TrainingDiverged, JobRefused, ValueError,
            TypeError) as e:
        st.error(_("{what} failed: {reason}").format(what=what, reason=error_message(e)), icon=":material/error:")
    except Exception as e:  # anything unexpected: still no traceback on the page
        st.error(_("{what} failed unexpectedly ({error}: {reason}). Try again, or report it with this message.").format(
            what=what, error=type(e).__name__, reason=e), icon=":material/error:")


def refusal(error: BaseException) -> None:
    """A start refused (the queue, a limit, a name taken, a data set missing), in the visitor's language."""
    st.error(error_message(error), icon=":material/block:")


def browser_session() -> str:
    """This browser tab's Streamlit session: its tasks are cancelled when it closes (see
    server.release_closed_sessions)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def task(name: str, *args, slot: str = "", **kwargs):
    """The background task ``name`` (see aelab.tasks) for this session, computed in a worker process and
    shared with every session asking the same; this session's previous task in ``slot`` (default: ``name``)
    is cancelled if nobody else waits for it. Raises JobRefused when the server's queue is full."""
    from aelab.jobs import registry

    return registry().task(name, *args, owner=browser_session(), slot=slot, **kwargs)


def wait_for_task(task, estimate_s: float, what: str, note: str = "") -> None:
    """A progress bar, redrawn every 2 s, while a background task runs; reruns the page once it is done."""
    @st.fragment(run_every=2.0)   # each redraw costs the task CPU on a small server
    def poll():
        if task.status == "queued":
            st.progress(0.0, text=(_("{what}: waiting for a free worker (place {place} in the queue).").format(
                what=what, place=task.position or 1) + " " + note).strip())
        else:
            st.progress(min(task.elapsed / max(estimate_s, 1e-3), 0.99),
                        text=(_("{what}: {elapsed:.0f} s of about {estimate:.0f} s.").format(
                            what=what, elapsed=task.elapsed, estimate=estimate_s) + " " + note).strip())
        if task.finished:
            st.rerun()
    poll()


def task_result(task, estimate_s: float, what: str, note: str = ""):
    """``task``'s result once it has finished; until then its progress bar, after a failure the reason, and
    None (the caller draws nothing more)."""
    if not task.finished:
        wait_for_task(task, estimate_s, what, note)
        return None
    if task.status != "finished":
        st.error(_("{what} failed: {reason}").format(what=what, reason=error_message(task.error or _("cancelled"))),
                 icon=":material/error:")
        return None
    return task.result


def follow_job(job_key: str, pick_key: str, what: str, unit: str, stop_help: str, draw=None) -> None:
    """The progress of this visitor's study or comparison (its id in ``job_key``), redrawn every 2 s: Stop (or
    Cancel while queued), its place in the queue, a bar of ``unit`` done and ``draw(snapshot)``. Once it has
    ended: why, if it did not finish; if it did, its result is picked in the selectbox ``pick_key``, once."""
    from aelab.jobs import registry

    job = registry().get(st.session_state.get(job_key))
    if job is None:
        return
    if job.finished:
        snap, shown = job.snapshot(), f"{job_key}_shown"
        if snap.status != "finished":
            st.warning(_("The last {what} ended: {status}.").format(what=what, status=status_label(snap.status)) + " "
                       + error_message(snap.error or ""), icon=":material/warning:")
        elif st.session_state.get(shown) != job.id:
            st.session_state[pick_key], st.session_state[shown] = state.run_key("run", snap.run_name), job.id
        return

    @st.fragment(run_every=float(os.environ.get("AELAB_LIVE_REFRESH_S", "2.0")))
    def live():
        snap = job.snapshot()
        if st.button(_("Cancel") if snap.status == "queued" else _("Stop"), key=f"{job_key}_stop",
                     icon=":material/stop:", help=stop_help):
            registry().cancel(job)
        if snap.status == "queued":
            st.info(_("Queued: place {place} in line.").format(place=snap.position), icon=":material/schedule:")
        st.progress(snap.fits_done / max(snap.fits_total, 1),
                    text=_("{done} of {total} {unit}").format(done=snap.fits_done, total=snap.fits_total, unit=unit))
        if draw is not None:
            draw(snap)
        if snap.done:
            st.rerun()
    live()


def images(arrays: np.ndarray, ncols: int = 10, container=st, **kwargs) -> None:
    """An image grid of (N, H, W) (or (rows, cols, H, W)) arrays in [0, 1]."""
    kwargs.setdefault("width", "stretch")
    container.image(figures.image_grid(arrays, ncols=ncols), output_format="PNG", **kwargs)


# --------------------------------------------------------------------------------- run labels
def dataset_label(name: str) -> str:
    return _("{name} (your images)").format(name=Path(name).stem) if is_file_name(name) else name


def model_label(run: Run) -> str:
    """'dense AE', 'conv VAE', 'conv GAN', 'conv classifier'..."""
    m = run.config.model
    kind = {"gan": "GAN", "classifier": "classifier"}.get(m.family, "VAE" if m.generative else "AE")
    return f"{m.arch} {kind}"


def score(run: Run) -> str:
    """The number that says how good a run is: FID for a GAN (its losses say nothing about its images),
    test accuracy for a classifier, the validation loss otherwise."""
    fid = (run.metrics.get("quality") or {}).get("fid")
    accuracy = (run.metrics.get("test") or {}).get("accuracy")
    loss = run.final_val_loss
    if run.family == "gan":
        return f"FID {fid:.1f}" if fid is not None else _("not scored")
    if accuracy is not None:
        return _("accuracy {accuracy:.1%}").format(accuracy=accuracy)
    return _("val {loss:.4f}").format(loss=loss) if loss is not None else ""


def describe(run: Run) -> str:
    tag = _(" (example)") if run.read_only else ""
    return f"{run.name}{tag} · {model_label(run)} · {dataset_label(run.config.data.name)} · {score(run)}"


def described(runs: dict[str, Run]) -> dict[str, str]:
    """{key: describe(run)}: a picker's labels, made in this run of the page. As a ``format_func``, ``.get`` of
    it gives the same labels when Streamlit (or AppTest) formats the options later, outside the session."""
    return {k: describe(run) for k, run in runs.items()}


# --------------------------------------------------------------------------------- run pages
def explain_missing(run: Run, capability: str) -> bool:
    """True when the run's model can do ``capability`` (reconstruct | encode | sample); otherwise say why not,
    point to what it can do, and return False."""
    if run.can(capability):
        return True
    action = {"reconstruct": _("reconstruct"), "encode": _("encode"), "sample": _("sample")}[capability]
    why = {"gan": _("A GAN has no encoder: its generator maps random codes to images, but nothing maps an image "
                    "back to a code. See its samples on the **Generate** page."),
           "classifier": _("The domain classifier maps images to classes (and 128 features); it does not generate "
                           "or reconstruct images. Its features are shown on the **Latent space** page.")}
    st.info(why.get(run.family, _("{run} cannot {action}: it is not a variational autoencoder. Train the vae, gan "
                                  "or dcgan recipe to sample new images.").format(run=run.name, action=action)) +
            " " + _("Pick another run in the sidebar to {action} images.").format(action=action),
            icon=":material/info:")
    return False


def need_run() -> Run | None:
    """The active run, or a message pointing to the Train page (and None)."""
    run = state.active_run()
    if run is None:
        st.info(_("No run yet. Train one on the **Train** page (a few seconds on the digits data set)."),
                icon=":material/info:")
        st.page_link("pages/train.py", label=_("Go to Train"), icon=":material/model_training:")
    return run


def run_and_data() -> tuple[Run | None, aelab.Dataset | None]:
    """The active run and its data set for the pages that inspect a run; (None, None) after saying why."""
    run = need_run()
    return (run, state.run_dataset(run)) if run else (None, None)
