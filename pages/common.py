"""What every page shares: cached data, models and runs, the sidebar, error reporting, small helpers."""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import streamlit as st

import aelab
from aelab import data as data_mod
from aelab import uploads
from aelab.runs import Run, RunStore, cleanup_sessions, default_runs_dir, examples_dir

ROOT = Path(__file__).resolve().parents[1]


def _fewer_malloc_arenas() -> None:
    """glibc gives threads their own malloc arenas (up to 8 per core), and freed memory stays in them: with
    a training thread, a t-SNE thread and the server's threads that is tens of MB of RSS for nothing.
    Two arenas (what MALLOC_ARENA_MAX=2 sets) measured 35 MB less at the same speed (bench: app memory)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)   # M_ARENA_MAX
    except (OSError, AttributeError):   # not glibc: nothing to do
        pass


_fewer_malloc_arenas()


def hosted() -> bool:
    """Hosted demo mode (AELAB_HOSTED=1): each visitor sees the examples and only their own runs."""
    return os.environ.get("AELAB_HOSTED", "") not in ("", "0", "false")


# ------------------------------------------------------------------------------------ router
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


# ------------------------------------------------------------------------------------ tasks
def wait_for_task(task, estimate_s: float, what: str, note: str = "") -> None:
    """A progress bar, redrawn every 2 s, while a background task runs; reruns the page once it is done."""
    @st.fragment(run_every=2.0)   # each redraw costs the task CPU on a small server
    def poll():
        st.progress(min(task.elapsed / max(estimate_s, 1e-3), 0.99),
                    text=f"{what}: {task.elapsed:.0f} s of about {estimate_s:.0f} s. {note}".strip())
        if task.done:
            st.rerun()
    poll()


# ------------------------------------------------------------------------------------ errors
@contextlib.contextmanager
def guard(what: str = "This step"):
    """Show any failure as a readable message instead of a traceback."""
    try:
        yield
    except (aelab.ConfigError, aelab.DataError, aelab.RunError, aelab.TrainingDiverged, ValueError, TypeError) as e:
        st.error(f"{what} failed: {e}", icon=":material/error:")
    except Exception as e:  # anything unexpected: still no traceback on the page
        st.error(f"{what} failed unexpectedly ({type(e).__name__}: {e}). Try again, or report it with this message.",
                 icon=":material/error:")


# -------------------------------------------------------------------------------------- data
@st.cache_data(show_spinner=False, ttl=60)
def default_dataset() -> tuple[str, str]:
    return data_mod.default_dataset()


@st.cache_resource(show_spinner="Loading the data set…")
def dataset(name: str) -> aelab.Dataset:
    return aelab.load_dataset(name)


@st.cache_data(show_spinner=False, ttl=60)
def dataset_sources() -> dict[str, str]:
    """{name: where it comes from} for the data sets available here (file checks, cached for a minute)."""
    return {row["name"]: row["source"] for row in data_mod.available() if row["available"]}


def uploads_owner() -> str:
    """Uploaded data sets belong to the visitor's session in hosted mode, to the local user otherwise."""
    return f"sessions/{session_id()}" if hosted() else "local"


def uploaded_datasets() -> list[str]:
    """Paths of the data sets this visitor uploaded (stored .npz files), newest first."""
    directory = uploads.uploads_dir(uploads_owner())
    files = sorted(directory.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True) if directory.is_dir() else []
    return [str(p) for p in files if not p.name.endswith(".tmp.npz")]


def available_datasets() -> list[str]:
    return list(dataset_sources()) + uploaded_datasets()


def dataset_label(name: str) -> str:
    return f"{Path(name).stem} (your images)" if data_mod.is_file_name(name) else name


def add_upload() -> None:
    """on_click of 'Add data set': check, convert and store the uploaded file, then select it."""
    st.session_state.pop("upload_error", None)
    file = st.session_state.get("upload_file")
    if file is None:
        st.session_state["upload_error"] = "Choose a file first."
        return
    try:
        if file.size > uploads.MAX_FILE_MB * 1e6:   # before reading it
            raise uploads.UploadError(f"the file is {file.size / 1e6:.1f} MB; the limit is {uploads.MAX_FILE_MB:g} MB")
        images = uploads.read_images(file.getvalue(), file.name, int(st.session_state.get("upload_size", 28)))
        path = uploads.save_upload(images, file.name, uploads_owner())
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
                              f"At most {uploads.MAX_FILE_MB:g} MB and {uploads.MAX_IMAGES:,} images.")
        st.number_input("Image size (pixels)", uploads.SIZES[0], uploads.SIZES[1], 28, key="upload_size",
                        help="Images are converted to grayscale and resized to this square size.")
        st.button("Add data set", key="upload_add", on_click=add_upload, icon=":material/add:")
        if "upload_error" in st.session_state:
            st.error(f"Upload rejected: {st.session_state['upload_error']}", icon=":material/block:")
        if "upload_done" in st.session_state:
            st.success(st.session_state.pop("upload_done"), icon=":material/check:")


def current_dataset_name() -> str:
    """The session's data set: a share link's ``data`` parameter on first visit, else the default."""
    if "dataset" not in st.session_state:
        linked = st.query_params.get("data")
        st.session_state["dataset"] = linked if linked in available_datasets() else default_dataset()[0]
    return st.session_state["dataset"]


# -------------------------------------------------------------------------------------- runs
def session_id() -> str:
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = uuid.uuid4().hex[:16]
    return st.session_state["session_id"]


def user_runs_dir() -> Path:
    """Where this visitor's runs go: the runs root, or in hosted mode a directory of their own."""
    root = default_runs_dir()
    return root / "sessions" / session_id() if hosted() else root


@st.cache_resource(ttl=3600, show_spinner=False)
def _cleanup_old_sessions(root: str) -> int:
    """Hosted mode: delete visitors' run directories idle for longer than AELAB_SESSION_TTL_HOURS (hourly)."""
    ttl_hours = float(os.environ.get("AELAB_SESSION_TTL_HOURS", "24"))
    return cleanup_sessions(Path(root) / "sessions", ttl_hours * 3600)


def stores() -> list[tuple[str, RunStore]]:
    """(label, store) pairs: the shipped examples (read-only), then this visitor's runs."""
    if hosted():
        _cleanup_old_sessions(str(default_runs_dir()))
    return [("example", RunStore(examples_dir(), read_only=True)), ("run", RunStore(user_runs_dir()))]


def run_key(label: str, name: str) -> str:
    return f"{label}:{name}"


def scan_runs() -> tuple[dict[str, Run], dict[str, str]]:
    """({key: run} over every store, user runs first (newest first), then examples; {name: error} of damaged
    run directories). One read of the run directories: call it once per page run."""
    runs: dict[str, Run] = {}
    problems: dict[str, str] = {}
    for label, store in reversed(stores()):
        found, damaged = store.scan()
        runs.update((run_key(label, run.name), run) for run in found)
        problems.update(damaged)
    return runs, problems


def all_runs() -> dict[str, Run]:
    return scan_runs()[0]


def user_store() -> RunStore:
    return stores()[1][1]


def model_label(run: Run) -> str:
    """'dense AE', 'conv VAE', 'conv GAN', 'conv classifier'..."""
    m = run.config.model
    kind = {"gan": "GAN", "classifier": "classifier"}.get(m.family, "VAE" if m.variational else "AE")
    return f"{m.arch} {kind}"


def score(run: Run) -> str:
    """The number that says how good a run is: FID for a GAN (its losses say nothing about its images),
    test accuracy for a classifier, the validation loss otherwise."""
    fid = (run.metrics.get("quality") or {}).get("fid")
    accuracy = (run.metrics.get("test") or {}).get("accuracy")
    loss = run.final_val_loss
    if run.family == "gan":
        return f"FID {fid:.1f}" if fid is not None else "not scored"
    return f"accuracy {accuracy:.1%}" if accuracy is not None else f"val {loss:.4f}" if loss is not None else ""


def describe(run: Run) -> str:
    tag = " (example)" if run.read_only else ""
    return f"{run.name}{tag} · {model_label(run)} · {dataset_label(run.config.data.name)} · {score(run)}"


def explain_missing(run: Run, capability: str) -> bool:
    """True when the run's model can do ``capability`` (reconstruct | encode | sample); otherwise say why not,
    point to what it can do, and return False."""
    model = model_of(run)
    if getattr(model, f"can_{capability}"):
        return True
    why = {"gan": "A GAN has no encoder: its generator maps random codes to images, but nothing maps an image "
                  "back to a code. See its samples on the **Generate** page.",
           "classifier": "The domain classifier maps images to classes (and 128 features); it does not generate "
                         "or reconstruct images. Its features are shown on the **Latent space** page."}
    st.info(why.get(run.family, f"{run.name} cannot {capability}: it is not a variational autoencoder. Train the "
                                 "vae, gan or dcgan recipe to sample new images.") +
            f" Pick another run in the sidebar to {capability} images.", icon=":material/info:")
    return False


def active_run(runs: dict[str, Run] | None = None) -> Run | None:
    """The session's active run (the newest run when none is chosen yet); ``runs`` saves a rescan."""
    runs = all_runs() if runs is None else runs
    key = st.session_state.get("active_run")
    if key not in runs:
        key = next(iter(runs), None)
        st.session_state["active_run"] = key
    return runs.get(key) if key else None


def set_active_run(label: str, name: str) -> None:
    st.session_state["active_run"] = run_key(label, name)


def run_at(path: str) -> Run:
    p = Path(path)
    return RunStore(p.parent).open(p.name)


def cache_key(run: Run) -> tuple[str, float]:
    """(run directory, weights time): what cached results of a run depend on."""
    return str(run.path), (run.path / "model.safetensors").stat().st_mtime


@st.cache_resource(max_entries=16, show_spinner="Loading the model…")
def _model(path: str, mtime: float):
    return run_at(path).load_model()


def model_of(run: Run):
    """The run's model on the CPU, cached per run directory and weights file time."""
    return _model(*cache_key(run))


# ----------------------------------------------------------------------------------- sidebar
def keep_form_state() -> None:
    """Streamlit drops the state of widgets a run does not draw; keep the Train form's ("f_*") alive
    so that switching pages, or hiding a field, does not lose what the user typed."""
    for k in list(st.session_state.keys()):
        if isinstance(k, str) and (k.startswith("f_") or k == "run_name"):
            st.session_state[k] = st.session_state[k]


def sidebar() -> None:
    keep_form_state()
    with st.sidebar:
        st.markdown("### :material/science: AE Lab")
        names = available_datasets()
        if current_dataset_name() not in names:
            st.session_state["dataset"] = names[0]
        st.selectbox("Data set", names, key="dataset", format_func=dataset_label,
                     help="Data set for new training runs. Fashion-MNIST is the book's; digits is embedded; "
                          "add your own images below.")
        chosen = st.session_state["dataset"]
        st.caption(f"From {dataset_sources().get(chosen) or 'your upload, stored in ' + str(Path(chosen).parent)}")
        upload_panel()
        runs = all_runs()
        if runs:
            active_run(runs)   # makes sure the session's choice is one of these runs
            st.session_state["sidebar_run"] = st.session_state["active_run"]
            st.selectbox("Active run", list(runs), format_func=lambda k: describe(runs[k]), key="sidebar_run",
                         on_change=lambda: st.session_state.update(active_run=st.session_state["sidebar_run"]),
                         help="The run the Reconstructions, Latent space and Generate pages show.")
        else:
            st.caption("No runs yet: train one on the Train page.")
        from aelab.train import resolve_device

        st.caption(f"Device: **{resolve_device('auto').type}**" + (" · hosted demo" if hosted() else ""))


def run_and_data() -> tuple[Run | None, aelab.Dataset | None]:
    """The active run and its data set for the pages that inspect a run; (None, None) after saying why."""
    run = need_run()
    return (run, run_dataset(run)) if run else (None, None)


def need_run() -> Run | None:
    """The active run, or a message pointing to the Train page (and None)."""
    run = active_run()
    if run is None:
        st.info("No run yet. Train one on the **Train** page (a few seconds on the digits data set).",
                icon=":material/info:")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    return run


def run_dataset(run: Run) -> aelab.Dataset | None:
    try:
        return dataset(run.config.data.name)
    except aelab.DataError as e:
        st.error(f"The data set of run {run.name} is not available here: {e}")
        return None
