"""Runs: the table of saved runs, comparison, rename / delete, download, reproduce."""
import pandas as pd
import streamlit as st

from aelab import figures
from aelab.presets import command_line, python_snippet
from aelab.runs import Run
from pages.shared import state, widgets
from pages.shared.sidebar import through_router

through_router()


def runs_table(runs: dict[str, Run]) -> None:
    table = pd.DataFrame([{
        "run": r.name, "source": "example" if r.read_only else "yours", "recipe": r.config.preset or "custom",
        "model": widgets.model_label(r), "data": widgets.dataset_label(r.config.data.name),
        "epochs": r.epochs_done, "val loss": r.final_val_loss,
        "kNN probe": (r.metrics.get("probes") or {}).get("codes", {}).get("knn"),
        "FID (domain)": (r.metrics.get("quality") or {}).get("fid"),
        "status": r.meta.get("status"), "created": r.meta.get("created"),
    } for r in runs.values()])
    st.dataframe(table, key="runs_table", hide_index=True,
                 column_config={"val loss": st.column_config.NumberColumn(format="%.4f"),
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


st.title("Runs")
runs, problems = state.scan_runs()
for name, err in problems.items():
    st.warning(f"Skipped a damaged run directory: {err}", icon=":material/warning:")
if not runs:
    st.info("No runs yet. Train one on the Train page.", icon=":material/info:")
else:
    runs_table(runs)
    compare(runs)
    st.divider()
    key = st.selectbox("Run", list(runs), format_func=lambda k: widgets.describe(runs[k]), key="runs_manage",
                       help="Rename, delete, download or reproduce this run.")
    manage(key, runs[key])
