"""Runs: the table of saved runs, comparison, rename / delete, download, reproduce."""
import pandas as pd
import streamlit as st

import aelab
from aelab import figures
from aelab.presets import command_line, python_snippet
from aelab.runs import Run, Study
from pages.shared import launch, state, widgets
from pages.shared.hparams_view import hparams_section
from pages.shared.sidebar import through_router

through_router()


def runs_table(runs: dict[str, Run]) -> None:
    table = pd.DataFrame([{
        "run": r.name, "source": "example" if r.read_only else "yours", "recipe": r.config.preset or "custom",
        "model": widgets.model_label(r), "data": widgets.dataset_label(r.config.data.name),
        "epochs": r.epochs_done, "val loss": r.final_val_loss,
        "rounded acc": (r.history.get("val_rounded_acc") or [None])[-1],
        "kNN probe": (r.metrics.get("probes") or {}).get("codes", {}).get("knn"),
        "FID (domain)": (r.metrics.get("quality") or {}).get("fid"),
        "status": r.meta.get("status"), "trained on": r.trained_on,
        "continues": (r.resumed_from or {}).get("run"), "created": r.meta.get("created"),
    } for r in runs.values()])
    st.dataframe(table, key="runs_table", hide_index=True,
                 column_config={"val loss": st.column_config.NumberColumn(format="%.4f"),
                                "rounded acc": st.column_config.NumberColumn(
                                    format="percent", help="Validation pixels equal once both images are rounded "
                                    "to 0 or 1 (the book's rounded_accuracy; BCE autoencoders)"),
                                "kNN probe": st.column_config.NumberColumn(format="percent"),
                                "FID (domain)": st.column_config.NumberColumn(
                                    format="%.2f", help="Fréchet distance of 5,000 samples to the test images on the "
                                    "domain classifier's features (Generate page); lower is better")})


def compare(runs: dict[str, Run]) -> None:
    keys = st.multiselect("Compare runs", list(runs), format_func=lambda k: widgets.describe(runs[k]),
                          key="runs_compare", placeholder="choose two or more runs",
                          help="Loss curves overlaid and metrics side by side.")
    if len(keys) < 2:
        return
    sel = {runs[k].name: runs[k] for k in keys}
    c = st.columns(2)
    c[0].plotly_chart(figures.compare_figure({n: r.history for n, r in sel.items()}, "val_loss"))
    c[1].plotly_chart(figures.compare_figure({n: r.history for n, r in sel.items()}, "loss"))
    st.dataframe(pd.DataFrame({n: {**{f"test {k}": v for k, v in r.metrics.get("test", {}).items()},
                                   "val loss": r.final_val_loss, "epochs": r.epochs_done,
                                   "s / epoch": r.meta.get("seconds_per_epoch"), "parameters": r.meta.get("n_params")}
                               for n, r in sel.items()}))


def continue_training(run: Run) -> None:
    """Train the run for more epochs, as a new run that names it (the live view is on the Train page)."""
    st.markdown("**Continue training**")
    if run.config.train.greedy:
        st.caption("A greedy run's phases are over: it cannot continue.")
        return
    c = st.columns([1, 2])
    more = c[0].number_input("More epochs", 1, 1000, 5, key="runs_more_epochs",
                             help="Added to the epochs done; the run is saved as a new run that names this one.")
    has_state = run.has_checkpoint
    fresh = False
    if not has_state:
        fresh = c[1].checkbox("Continue with a fresh optimiser", key="runs_fresh_optimizer",
                              help="This run was saved without its optimiser state (an example, an older run, or a "
                                   "diverged one): its momentum and step sizes start again, so the curve may jump.")
    if c[1].button(f"Train {more} more epochs", key="runs_continue", icon=":material/resume:",
                   disabled=not (has_state or fresh)):
        from aelab.experiment import plan_resume
        from aelab.jobs import JobRefused

        try:
            cfg, _ = plan_resume(run, int(more), fresh)
            launch.start_job(cfg, None, resume=(run, fresh))
        except (JobRefused, aelab.RunError, aelab.ConfigError, aelab.DataError) as e:
            st.error(str(e), icon=":material/block:")
            return
        st.switch_page("pages/train.py")
    if run.resumed_from:
        r = run.resumed_from
        st.caption(f"This run continues {r['run']} after {r['epochs']:g} epochs"
                   + (" with a fresh optimiser" if r["fresh_optimizer"] else "")
                   + (" (that run had stopped mid-epoch; training went on with a new epoch)"
                      if r["stopped_mid_epoch"] else "") + ".")


def manage(key: str, run: Run) -> None:
    """Reproduce, activate, download, rename or delete one run."""
    st.subheader(run.name)
    left, right = st.columns(2)
    with left:
        st.markdown("**Reproduce it**")
        data = state.public_data_name(run.config.data.name)
        st.code(command_line(run.config, data), language="bash")
        st.code(python_snippet(run.config, data), language="python", wrap_lines=True)
        if st.button("Make it the active run", key="runs_activate", icon=":material/check:"):
            st.session_state["active_run"] = key
            st.rerun()
        with st.container(key="continue_training"):   # a key: the screenshots script finds the section by it
            continue_training(run)
    with right:
        st.download_button("Download (zip: config, history, metrics, weights)", run.archive(), f"{run.name}.zip",
                           mime="application/zip", icon=":material/download:", key="runs_download")
        if run.read_only:
            st.caption("Example runs are read-only.")
            return
        with st.form("rename"):
            new = st.text_input("New name", value=run.name, key="runs_new_name")
            if st.form_submit_button("Rename"):
                with widgets.guard("Renaming"):
                    renamed = state.user_store().rename(run.name, new)
                    if st.session_state.get("active_run") == key:
                        state.set_active_run("run", renamed.name)
                    st.rerun()
        sure = st.checkbox(f"Yes, delete {run.name} for good", key="runs_confirm")
        if st.button("Delete", disabled=not sure, icon=":material/delete:", key="runs_delete"):
            with widgets.guard("Deleting"):
                state.user_store().delete(run.name)
                st.session_state.pop("runs_confirm", None)
                st.rerun()


def studies_section(studies: dict[str, Study]) -> None:
    """The saved pretraining studies: a table, and download or delete one (open it on the Pretraining page)."""
    st.subheader("Pretraining studies")
    rows = [{"study": s.name, "source": "example" if s.read_only else "yours",
             "encoders": ", ".join(s.meta["encoders"]), "data": widgets.dataset_label(s.meta["data"]),
             "budgets": ", ".join(map(str, s.config.labels)), "seeds": s.config.seeds,
             "seconds": s.meta.get("seconds"), "created": s.meta.get("created")}
            for s in studies.values()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="studies_table")
    key = st.selectbox("Study", list(studies), format_func=lambda k: studies[k].name, key="studies_manage")
    study = studies[key]
    c = st.columns([2, 2, 1])
    c[0].download_button("Download (zip: study.json, results.json)", study.archive(), f"{study.name}.zip",
                         mime="application/zip", icon=":material/download:", key="studies_download")
    c[1].page_link("pages/pretrain.py", label="See its chart on the Pretraining page", icon=":material/school:")
    if study.read_only:
        c[2].caption("Example studies are read-only.")
        return
    sure = c[2].checkbox(f"Yes, delete {study.name}", key="studies_confirm")
    if c[2].button("Delete", disabled=not sure, icon=":material/delete:", key="studies_delete"):
        with widgets.guard("Deleting"):
            state.user_store().delete(study.name)
            st.session_state.pop("studies_confirm", None)
            st.rerun()


st.title("Runs")
runs, problems = state.scan_runs()
for name, err in problems.items():
    st.warning(f"Skipped a damaged run directory: {err}", icon=":material/warning:")
if not runs:
    st.info("No runs yet. Train one on the Train page.", icon=":material/info:")
else:
    runs_table(runs)
    compare(runs)
    with st.container(key="settings_results"):   # a key: the screenshots script finds the section by it
        hparams_section(runs)
    st.divider()
    key = st.selectbox("Run", list(runs), format_func=lambda k: widgets.describe(runs[k]), key="runs_manage",
                       help="Rename, delete, download or reproduce this run.")
    manage(key, runs[key])

studies, study_problems = state.scan_studies()
for name, err in study_problems.items():
    st.warning(f"Skipped a damaged study: {err}", icon=":material/warning:")
if studies:
    st.divider()
    studies_section(studies)
