"""The session's state and the process's caches: the visitor, their runs and data sets, loaded models."""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import uuid
from pathlib import Path

import streamlit as st

import aelab
from aelab import data as data_mod
from aelab import limits
from aelab.runs import Run, RunStore, Study, cleanup_sessions, default_runs_dir, examples_dir
from pages.shared.i18n import _, error_message

BY_RUN = {Run: lambda run: run.fingerprint}   # cached results of a run depend on its directory and weights
BY_DATA = {aelab.DataConfig: lambda cfg: (cfg.name, cfg.data_dir, cfg.image_size)}

hosted = limits.hosted   # AELAB_HOSTED=1: each visitor sees the examples and only their own runs

VISITOR_COOKIE = "aelab_visitor"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,64}")


def session_id() -> str:
    """Who this visitor is: in hosted mode a digest of the unguessable token in their cookie, so a reload or
    a second tab finds their runs and uploads again (a new visitor gets a token, set by
    :func:`remember_visitor`); locally a random id per browser session."""
    if "session_id" not in st.session_state:
        if hosted():
            token = st.context.cookies.get(VISITOR_COOKIE)
            if not isinstance(token, str) or not _TOKEN.fullmatch(token):
                token = st.session_state["new_visitor_token"] = secrets.token_urlsafe(32)
            # folders are named by a digest: a path that shows somewhere never gives the token away
            st.session_state["session_id"] = hashlib.sha256(token.encode()).hexdigest()[:20]
        else:
            st.session_state["session_id"] = uuid.uuid4().hex[:16]
    return st.session_state["session_id"]


def remember_visitor() -> None:
    """Hosted mode: store a new visitor's token in a cookie of this site (a component sets it: Streamlit
    reads cookies but cannot set them). Never in the address, which is the shareable link."""
    token = st.session_state.get("new_visitor_token")
    if token:
        import datetime as dt

        import extra_streamlit_components as stx

        stx.CookieManager(key="visitor_cookies").set(
            VISITOR_COOKIE, token, key="visitor_cookie_set", same_site="strict",
            expires_at=dt.datetime.now() + dt.timedelta(days=30))


# -------------------------------------------------------------------------------------- data
@st.cache_data(show_spinner=False, ttl=60)
def default_dataset() -> tuple[str, str]:
    return data_mod.default_dataset()


@st.cache_resource(show_spinner="Loading the data set…", hash_funcs=BY_DATA)
def dataset(cfg: aelab.DataConfig) -> aelab.Dataset:
    return aelab.load_dataset(cfg)


@st.cache_data(show_spinner=False, ttl=60)
def dataset_sources() -> dict[str, str]:
    """{name: where it comes from} for the data sets available here (file checks, cached for a minute)."""
    return {row["name"]: row["source"] for row in data_mod.available() if row["available"]}


def uploads_owner() -> str:
    """Uploaded data sets belong to the visitor's session in hosted mode, to the local user otherwise."""
    return f"sessions/{session_id()}" if hosted() else "local"


def available_datasets() -> list[str]:
    return list(dataset_sources()) + data_mod.stored_uploads(uploads_owner())


def public_data_name(name: str) -> str:
    """How a data set is named in links and commands: a built-in's name, an upload's file name (its path
    on this server is nobody's business)."""
    return Path(name).name if data_mod.is_file_name(name) else name


def current_dataset_name() -> str:
    """The session's data set: a share link's ``data`` parameter on first visit (a built-in, or one of
    this visitor's uploads by file name), else the default."""
    if "dataset" not in st.session_state:
        linked = st.query_params.get("data")
        known = {public_data_name(name): name for name in available_datasets()}
        st.session_state["dataset"] = known.get(linked, default_dataset()[0])
    return st.session_state["dataset"]


# -------------------------------------------------------------------------------------- runs
def user_runs_dir() -> Path:
    """Where this visitor's runs go: the runs root, or in hosted mode a directory of their own."""
    root = default_runs_dir()
    return root / "sessions" / session_id() if hosted() else root


@st.cache_resource(ttl=3600, show_spinner=False)
def _cleanup_old_sessions(root: str) -> int:
    """Hosted mode: delete visitors' run directories and uploaded data sets idle for longer than
    AELAB_SESSION_TTL_HOURS (at most hourly)."""
    ttl_s = float(os.environ.get("AELAB_SESSION_TTL_HOURS", "24")) * 3600
    return cleanup_sessions(Path(root) / "sessions", ttl_s) + cleanup_sessions(data_mod.uploads_dir("sessions"), ttl_s)


def stores() -> list[tuple[str, RunStore]]:
    """(label, store) pairs: the shipped examples (read-only), then this visitor's runs."""
    if hosted():
        _cleanup_old_sessions(str(default_runs_dir()))
    return [("example", RunStore(examples_dir(), read_only=True)), ("run", RunStore(user_runs_dir()))]


def user_store() -> RunStore:
    return stores()[1][1]


def run_key(label: str, name: str) -> str:
    return f"{label}:{name}"


def scan_runs() -> tuple[dict[str, Run], dict[str, str]]:
    """({key: run} over every store, user runs first (newest first), then examples; {name: error} of damaged
    run directories). One read of the run directories: call it once per page run."""
    return scan_stores(RunStore.scan)


def scan_studies() -> tuple[dict[str, Study], dict[str, str]]:
    """({key: study}, {name: error}) over every store, this visitor's studies first, like :func:`scan_runs`."""
    return scan_stores(RunStore.scan_studies)


def scan_stores(scan) -> tuple[dict, dict[str, str]]:
    """What ``scan`` (a RunStore method) finds in every store, keyed like :func:`scan_runs`."""
    found_all: dict = {}
    problems: dict[str, str] = {}
    for label, store in reversed(stores()):
        found, damaged = scan(store)
        found_all.update((run_key(label, item.name), item) for item in found)
        problems.update(damaged)
    return found_all, problems


def all_runs() -> dict[str, Run]:
    return scan_runs()[0]


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


@st.cache_resource(max_entries=16, show_spinner="Loading the model…", hash_funcs=BY_RUN)
def model_of(run: Run):
    """The run's model on the CPU, cached per run directory and weights file time."""
    return run.load_model()


def run_dataset(run: Run) -> aelab.Dataset | None:
    """The data set ``run`` was trained on (its name, directory and image size), or None after saying why."""
    try:
        return dataset(run.config.data)
    except aelab.DataError as e:
        st.error(_("The data set of run {run} is not available here: {reason}").format(run=run.name,
                                                                                      reason=error_message(e)))
        return None
