"""The shared sidebar (data set, uploads, active run, device) and the router fix every page calls first."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from aelab import data as data_mod
from aelab import limits, uploads
from aelab.train import resolve_device
from pages.shared import state
from pages.shared.i18n import _, error_message, language_picker
from pages.shared.widgets import dataset_label, described


def through_router() -> None:
    """Make sure the page runs inside streamlit_app.py's navigation.

    Streamlit treats a ``pages/`` folder as a legacy multipage app until some session's main script
    calls ``st.navigation``; a share link that is the very first request to a fresh server would run
    the page file alone (no sidebar, no page config). Switch the process to the router and rerun.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def keep_form_state() -> None:
    """Streamlit drops the state of widgets a run does not draw; keep the Train form's ("f_*") alive
    so that switching pages, or hiding a field, does not lose what the user typed."""
    for k in list(st.session_state.keys()):
        if isinstance(k, str) and (k.startswith("f_") or k == "run_name"):
            st.session_state[k] = st.session_state[k]


def add_upload() -> None:
    """on_click of 'Add data set': check, convert and store the uploaded file, then select it."""
    st.session_state.pop("upload_error", None)
    file = st.session_state.get("upload_file")
    if file is None:
        st.session_state["upload_error"] = _("Choose a file first.")
        return
    try:
        limits.check("upload_bytes", file.size, uploads.UploadLimitError)   # before reading it
        images = uploads.read_images(file.getvalue(), file.name, int(st.session_state.get("upload_size", 28)))
        path = data_mod.store_upload(images, file.name, state.uploads_owner())
    except uploads.UploadError as e:
        st.session_state["upload_error"] = error_message(e)
        return
    st.session_state["dataset"] = str(path)
    classes = len(images.class_names) if images.labels is not None else 0
    st.session_state["upload_done"] = _("Added **{name}**: {n:,} images of {h}×{w}, {classes} classes.").format(
        name=Path(path).stem, n=len(images.images), h=images.images.shape[1], w=images.images.shape[2],
        classes=classes)


def upload_panel() -> None:
    # open while it has news: a refusal, or the data set just added (closed, it would hide that message)
    with st.expander(_("Add your own images"), icon=":material/upload:",
                     expanded="upload_error" in st.session_state or "upload_done" in st.session_state):
        st.file_uploader(_("An .npz of arrays or a .zip of images"), type=["npz", "zip"], key="upload_file",
                         help=_("npz: 'images' (N×H×W, uint8 or floats in [0, 1]), optional 'labels' and "
                                "'class_names'. zip: PNG/JPEG files in one folder per class. At most {mb:g} MB "
                                "and {images:,.0f} images.").format(mb=limits.limit("upload_bytes"),
                                                                     images=limits.limit("upload_images")))
        st.number_input(_("Image size (pixels)"), uploads.SIZES[0], uploads.SIZES[1], 28, key="upload_size",
                        help=_("Images are converted to grayscale and resized to this square size."))
        st.button(_("Add data set"), key="upload_add", on_click=add_upload, icon=":material/add:")
        if "upload_error" in st.session_state:
            st.error(_("Upload rejected: {reason}").format(reason=st.session_state["upload_error"]),
                     icon=":material/block:")
        if "upload_done" in st.session_state:
            st.success(st.session_state.pop("upload_done"), icon=":material/check:")


def sidebar() -> None:
    keep_form_state()
    with st.sidebar:
        st.markdown("### :material/science: AE Lab")
        names = state.available_datasets()
        if state.current_dataset_name() not in names:
            st.session_state["dataset"] = names[0]
        labels = {name: dataset_label(name) for name in names}   # formatted now, in this session's language
        st.selectbox(_("Data set"), names, key="dataset", format_func=labels.get,
                     help=_("Data set for new training runs. Fashion-MNIST is the book's; digits is embedded; "
                            "add your own images below."))
        chosen = st.session_state["dataset"]
        source = state.dataset_sources().get(chosen) or (
            _("your upload") if state.hosted() else _("your upload, stored in {folder}").format(
                folder=Path(chosen).parent))
        st.caption(_("From {source}").format(source=source))
        upload_panel()
        runs = state.all_runs()
        if runs:
            state.active_run(runs)   # makes sure the session's choice is one of these runs
            st.session_state["sidebar_run"] = st.session_state["active_run"]
            st.selectbox(_("Active run"), list(runs), format_func=described(runs).get,
                         key="sidebar_run",
                         on_change=lambda: st.session_state.update(active_run=st.session_state["sidebar_run"]),
                         help=_("The run the Reconstructions, Latent space and Generate pages show."))
        else:
            st.caption(_("No runs yet: train one on the Train page."))
        device = _("Device: **{device}**").format(device=resolve_device("auto").type)
        st.caption(device + (_(" · hosted demo") if state.hosted() else ""))
        language_picker()
        state.remember_visitor()
