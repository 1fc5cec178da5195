"""Starting training jobs for this visitor: one run, a continued run, or a sweep's runs, checked the same way."""
from __future__ import annotations

import streamlit as st

import aelab
from aelab.experiment import check_fits
from aelab.jobs import registry
from aelab.runs import Run, find_classifier
from pages.shared import state
from pages.shared.i18n import _

FIRST_POINT_WAIT_S = 2.0   # with a warm worker the first point comes within about 0.5 s of Start


def checked(cfgs: list[aelab.RunConfig], runs: dict[str, Run] | None = None):
    """Refuse (RunError) any of the validated ``cfgs`` too large for this server, before anything starts; the
    newest domain classifier among ``runs`` (default: every run) to score their samples, if they generate."""
    for cfg in cfgs:
        check_fits(cfg, state.dataset(cfg.data))
    if not cfgs[0].model.generative:
        return None
    return find_classifier(cfgs[0].data.name, (runs if runs is not None else state.all_runs()).values())


def start_job(cfg: aelab.RunConfig, name: str | None = None, runs: dict[str, Run] | None = None,
              resume: tuple[Run, bool] | None = None):
    """Start training the validated ``cfg`` for this visitor (``resume``: (run, fresh optimiser?) continues that
    run); the Train page follows it. Raises JobRefused / RunError."""
    job = registry().start(cfg, state.user_runs_dir(), state.session_id(), name, checked([cfg], runs), resume)
    st.session_state["job_id"] = job.id
    # the page that follows draws the first point at once rather than at its next refresh (2 s later)
    with st.spinner(_("Starting…")):
        job.wait_for_first_point(FIRST_POINT_WAIT_S)
    return job


def start_sweep(planned: list[tuple[str, aelab.RunConfig]]) -> list:
    """Queue every (name, config) of a sweep for this visitor, all or none. Raises JobRefused / RunError."""
    classifier = checked([cfg for _, cfg in planned])
    return registry().start_sweep(planned, state.user_runs_dir(), state.session_id(), classifier)
