"""Runs: the table of saved runs, comparison, settings against results, rename / delete, download, reproduce,
continue; the saved pretraining studies."""
import pandas as pd
import streamlit as st

import aelab
from aelab import figures
from aelab.presets import command_line, python_snippet
from aelab.runs import Run
from pages.shared import launch, state, widgets
from pages.shared.hparams_view import hparams_section
from pages.shared.i18n import _, current, error_message
from pages.shared.sidebar import through_router
from pages.shared.studies_view import studies_section

through_router()


def runs_table(runs: dict[str, Run]) -> None:
    source = {True: _("example"), False: _("yours")}
    table = pd.DataFrame([{
        _("run"): r.name, _("source"): source[r.read_only], _("recipe"): r.config.preset or _("custom"),
        _("model"): widgets.model_label(r), _("data"): widgets.dataset_label(r.config.data.name),
        _("epochs"): r.epochs_done, _("val loss"): r.final_val_loss,
        _("rounded acc"): (r.history.get("val_rounded_acc") or [None])[-1],
        _("kNN probe"): (r.metrics.get("probes") or {}).get("codes", {}).get("knn"),
        _("FID (domain)"): (r.metrics.get("quality") or {}).get("fid"),
        _("status"): r.meta.get("status"), _("trained on"): r.trained_on,
        _("continues"): (r.resumed_from or {}).get("run"), _("created"): r.meta.get("created"),
    } for r in runs.values()])
    st.dataframe(table, key="runs_table", hide_index=True, column_config={
        _("val loss"): st.column_config.NumberColumn(format="%.4f"),
        _("rounded acc"): st.column_config.NumberColumn(
            format="percent", help=_("Validation pixels equal once both images are rounded to 0 or 1 (the book's "
                                     "rounded_accuracy; BCE autoencoders)")),
        _("kNN probe"): st.column_config.NumberColumn(format="percent"),
        _("FID (domain)"): st.column_config.NumberColumn(
            format="%.2f", help=_("Fréchet distance of 5,000 samples to the test images on the domain "
                                  "classifier's features (Generate page); lower is better"))})


def compare(runs: dict[str, Run]) -> None:
    keys = st.multiselect(_("Compare runs"), list(runs), format_func=widgets.described(runs).get,
                          key="runs_compare",
                          placeholder=_("choose two or more runs"),
                          help=_("Loss curves overlaid and metrics side by side."))
    if len(keys) < 2:
        return
    sel = {runs[k].name: runs[k] for k in keys}
    c = st.columns(2)
    c[0].plotly_chart(figures.compare_figure({n: r.history for n, r in sel.items()}, "val_loss", lang=current()))
    c[1].plotly_chart(figures.compare_figure({n: r.history for n, r in sel.items()}, "loss", lang=current()))
    st.dataframe(pd.DataFrame({n: {**{_("test {metric}").format(metric=k): v
                                      for k, v in r.metrics.get("test", {}).items()},
                                   _("val loss"): r.final_val_loss, _("epochs"): r.epochs_done,
                                   _("s / epoch"): r.meta.get("seconds_per_epoch"),
                                   _("parameters"): r.meta.get("n_params")}
                               for n, r in sel.items()}))


def continue_training(run: Run) -> None:
    """Train the run for more epochs, as a new run that names it (the live view is on the Train page)."""
    st.markdown(_("**Continue training**"))
    if run.config.train.greedy:
        st.caption(_("A greedy run's phases are over: it cannot continue."))
        return
    c = st.columns([1, 2])
    more = c[0].number_input(_("More epochs"), 1, 1000, 5, key="runs_more_epochs",
                             help=_("Added to the epochs done; the run is saved as a new run that names this one."))
    has_state = run.has_checkpoint
    fresh = False
    if not has_state:
        fresh = c[1].checkbox(_("Continue with a fresh optimiser"), key="runs_fresh_optimizer",
                              help=_("This run was saved without its optimiser state (an example, an older run, or "
                                     "a diverged one): its momentum and step sizes start again, so the curve may "
                                     "jump."))
    if c[1].button(_("Train {n} more epochs").format(n=more), key="runs_continue", icon=":material/resume:",
                   disabled=not (has_state or fresh)):
        from aelab.experiment import plan_resume
        from aelab.jobs import JobRefused

        try:
            cfg, _resume = plan_resume(run, int(more), fresh)
            launch.start_job(cfg, None, resume=(run, fresh))
        except (JobRefused, aelab.RunError, aelab.ConfigError, aelab.DataError) as e:
            st.error(error_message(e), icon=":material/block:")
            return
        st.switch_page("pages/train.py")
    if run.resumed_from:
        r = run.resumed_from
        st.caption(" ".join([_("This run continues {run} after {epochs:g} epochs.").format(
            run=r["run"], epochs=r["epochs"])]
            + ([_("It started with a fresh optimiser.")] if r["fresh_optimizer"] else [])
            + ([_("That run had stopped mid-epoch; training went on with a new epoch.")]
               if r["stopped_mid_epoch"] else [])))


def manage(key: str, run: Run) -> None:
    """Reproduce, activate, download, rename or delete one run."""
    st.subheader(run.name)
    left, right = st.columns(2)
    with left:
        st.markdown(_("**Reproduce it**"))
        data = state.public_data_name(run.config.data.name)
        st.code(command_line(run.config, data), language="bash")
        st.code(python_snippet(run.config, data), language="python", wrap_lines=True)
        if st.button(_("Make it the active run"), key="runs_activate", icon=":material/check:"):
            st.session_state["active_run"] = key
            st.rerun()
        with st.container(key="continue_training"):   # a key: the screenshots script finds the section by it
            continue_training(run)
    with right:
        st.download_button(_("Download (zip: config, history, metrics, weights)"), run.archive(),
                           f"{run.name}.zip", mime="application/zip", icon=":material/download:", key="runs_download")
        if run.read_only:
            st.caption(_("Example runs are read-only."))
            return
        with st.form("rename"):
            new = st.text_input(_("New name"), value=run.name, key="runs_new_name")
            if st.form_submit_button(_("Rename")):
                with widgets.guard(_("Renaming")):
                    renamed = state.user_store().rename(run.name, new)
                    if st.session_state.get("active_run") == key:
                        state.set_active_run("run", renamed.name)
                    st.rerun()
        sure = st.checkbox(_("Yes, delete {run} for good").format(run=run.name), key="runs_confirm")
        if st.button(_("Delete"), disabled=not sure, icon=":material/delete:", key="runs_delete"):
            with widgets.guard(_("Deleting")):
                state.user_store().delete(run.name)
                st.session_state.pop("runs_confirm", None)
                st.rerun()


st.title(_("Runs"))
runs, problems = state.scan_runs()
for name, err in problems.items():
    st.warning(_("Skipped a damaged run directory: {reason}").format(reason=err), icon=":material/warning:")
if not runs:
    st.info(_("No runs yet: train one on the Train page."), icon=":material/info:")
else:
    runs_table(runs)
    compare(runs)
    with st.container(key="settings_results"):   # a key: the screenshots script finds the section by it
        hparams_section(runs)
    st.divider()
    key = st.selectbox(_("Run"), list(runs), format_func=widgets.described(runs).get, key="runs_manage",
                       help=_("Rename, delete, download or reproduce this run."))
    manage(key, runs[key])

studies, study_problems = state.scan_studies()
for name, err in study_problems.items():
    st.warning(_("Skipped a damaged study: {reason}").format(reason=err), icon=":material/warning:")
if studies:
    st.divider()
    studies_section(studies)
