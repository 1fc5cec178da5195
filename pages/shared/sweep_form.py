"""The Train page's sweep: the form's settings with one or two of them varied, every run queued as a job."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

import aelab
from aelab.jobs import JobRefused, registry
from aelab.sweeps import MAX_SWEEP_RUNS, parse_values, plan_sweep, sweepable
from pages.shared import launch, widgets
from pages.shared.i18n import _, error_message, status_label

NONE = "–"


def sweep_panel(cfg: aelab.RunConfig | None) -> None:
    """Pick one or two settings and their values; Start queues a run per combination (of the form's settings)."""
    with st.expander(_("Sweep: several runs, one or two settings varied")):
        if cfg is None:
            st.caption(_("Fix the settings above first."))
            return
        names = sweepable(cfg.model.family)
        axes, cols = {}, st.columns(2)
        for i, col in enumerate(cols):
            name = col.selectbox(_("Setting {n}").format(n=i + 1), [NONE, *names], key=f"sweep_setting_{i}",
                                 help=_("A setting of the form above to vary; every other setting stays as above."))
            if name != NONE:
                axes[name] = col.text_input(_("Values of {setting}").format(setting=name), key=f"sweep_values_{i}",
                                            placeholder=_("e.g. 0.001, 0.01, 0.1"), help=_("Comma-separated."))
        if not axes or not all(axes.values()):
            st.caption(_("Every combination becomes a run (at most {n}), queued under this server's job limits; "
                         "compare them on the Runs page under 'Settings against results'.").format(n=MAX_SWEEP_RUNS))
            return
        try:
            planned = plan_sweep(cfg, {k: parse_values(v) for k, v in axes.items()})
        except aelab.ConfigError as e:
            widgets.refusal(e)
            return
        if st.button(_("Start the sweep ({n} runs)").format(n=len(planned)), key="sweep_start",
                     icon=":material/stacks:"):
            try:
                jobs = launch.start_sweep(planned)
            except (JobRefused, aelab.RunError, aelab.ConfigError, aelab.DataError) as e:
                widgets.refusal(e)
                return
            st.session_state["sweep_jobs"] = [job.id for job in jobs]
    sweep_status()


def sweep_status() -> None:
    """The last sweep's runs: status and validation loss, redrawn while any of them is queued or training."""
    jobs = [registry().get(i) for i in st.session_state.get("sweep_jobs", [])]
    jobs = [j for j in jobs if j is not None]
    if not jobs:
        return

    def table() -> bool:
        snaps = [j.snapshot() for j in jobs]
        st.dataframe(pd.DataFrame([{
            _("run"): j.name,
            _("status"): status_label(s.status)
            + (_(" (place {place})").format(place=s.position) if s.position else ""),
            _("epoch"): f"{s.epoch}/{s.epochs}", _("val loss"): (s.history.get("val_loss") or [None])[-1],
            _("error"): error_message(s.error) if s.error else None} for j, s in zip(jobs, snaps)]),
            hide_index=True, key="sweep_table")
        return all(s.done for s in snaps)

    st.markdown("**" + _("Sweep") + "**")
    if all(j.finished for j in jobs):
        table()
        st.page_link("pages/runs.py", label=_("Compare them on the Runs page"), icon=":material/table_chart:")
        return

    @st.fragment(run_every=float(os.environ.get("AELAB_LIVE_REFRESH_S", "2.0")))
    def live():
        if table():
            st.rerun()
    live()
