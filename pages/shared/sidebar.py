"""The shared sidebar (data set, uploads, active run, device) and the router fix every page calls first."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from aelab import data as data_mod
from aelab import limits, uploads
from aelab.train import resolve_device
from pages.shared import state
from pages.shared.widgets import dataset_label, describe


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
        st.session_state["upload_error"] = "Choose a file first."
        return
    try:
        limits.check("upload_bytes", file.size, uploads.UploadLimitError)   # before reading it
        images = uploads.read_images(file.getvalue(), file.name, int(st.session_state.get("upload_size", 28)))
        path = data_mod.store_upload(images, file.name, state.uploads_owner())
    except uploads.UploadError as e:
        st.session_state["upload_error"] = str(e)
        return
    st.session_state["dataset"] = str(path)
    st.session_state["upload_done"] = (f"Added **{Path(path).stem}**: {len(images.images):,} images of "
                                       f"{images.images.shape[1]}×{images.images.shape[2]}, "
                                       f"{len(images.class_names) if images.labels is not None else 'no'} classes.")


def upload_panel() -> None:
    with st.expander("Add your own images", icon=":material/upload:",
                     expanded="upload_error" in st.session_state):
        st.file_uploader("An .npz of arrays or a .zip of images", type=["npz", "zip"], key="upload_file",
                         help="npz: 'images' (N×H×W, uint8 or floats in [0, 1]), optional 'labels' and "
                              "'class_names'. zip: PNG/JPEG files in one folder per class. "
                              f"At most {limits.limit('upload_bytes'):g} MB and "
                              f"{limits.limit('upload_images'):,.0f} images.")
        st.number_input("Image size (pixels)", uploads.SIZES[0], uploads.SIZES[1], 28, key="upload_size",
                        help="Images are converted to grayscale and resized to this square size.")
        st.button("Add data set", key="upload_add", on_click=add_upload, icon=":material/add:")
        if "upload_error" in st.session_state:
            st.error(f"Upload rejected: {st.session_state['upload_error']}", icon=":material/block:")
        if "upload_done" in st.session_state:
            st.success(st.session_state.pop("upload_done"), icon=":material/check:")


def sidebar() -> None:
    keep_form_state()
    with st.sidebar:
        st.markdown("### :material/science: AE Lab")
        names = state.available_datasets()
        if state.current_dataset_name() not in names:
            st.session_state["dataset"] = names[0]
        st.selectbox("Data set", names, key="dataset", format_func=dataset_label,
                     help="Data set for new training runs. Fashion-MNIST is the book's; digits is embedded; "
                          "add your own images below.")
        chosen = st.session_state["dataset"]
        source = state.dataset_sources().get(chosen) or (
            "your upload" if state.hosted() else f"your upload, stored in {Path(chosen).parent}")
        st.caption(f"From {source}")
        upload_panel()
        runs = state.all_runs()
        if runs:
            state.active_run(runs)   # makes sure the session's choice is one of these runs
            st.session_state["sidebar_run"] = st.session_state["active_run"]
            st.selectbox("Active run", list(runs), format_func=lambda k: describe(runs[k]), key="sidebar_run",
                         on_change=lambda: st.session_state.update(active_run=st.session_state["sidebar_run"]),
                         help="The run the Reconstructions, Latent space and Generate pages show.")
        else:
            st.caption("No runs yet: train one on the Train page.")
        st.caption(f"Device: **{resolve_device('auto').type}**" + (" · hosted demo" if state.hosted() else ""))
        state.remember_visitor()
