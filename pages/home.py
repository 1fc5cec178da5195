"""Home: what AE Lab is, the data set, one-click recipes, recent runs."""
import streamlit as st

import aelab
from aelab.jobs import JobRefused
from aelab.presets import PRESETS
from pages.shared import launch, state, widgets
from pages.shared.sidebar import through_router

through_router()

st.title("AE Lab")
st.markdown(
    "An autoencoder laboratory in your browser. An **autoencoder** learns to copy its input through a narrow "
    "**bottleneck**, so it must discover a compact code for it. Vary how it is constrained and you get the ideas "
    "of chapter 17 of *Hands-On Machine Learning*:")
c = st.columns(4)
c[0].markdown("**Bottleneck** · a 30-number code for a 784-pixel image: the stacked autoencoder.")
c[1].markdown("**Denoising** · corrupt the input with noise or dropout, ask for the clean image back.")
c[2].markdown("**Sparsity** · many code units, few active at once (L1 or KL penalty).")
c[3].markdown("**Variational** · a Gaussian code you can *sample* from to draw new images.")

name = state.current_dataset_name()
label = widgets.dataset_label(name)
why = "Your upload; choose another data set in the sidebar." if label != name else f"{state.default_dataset()[1]}."
st.info(f"Data set in use: **{label}**. {why}", icon=":material/dataset:")

st.subheader("Start a recipe")
st.caption(f"One click trains the book's recipe on **{label}** in the background and opens the Train page.")
cols = st.columns(4)
for i, (preset, (description, _, train)) in enumerate(PRESETS.items()):
    with cols[i % 4]:
        if st.button(preset, key=f"quick-{preset}", help=f"{description}; {train.epochs} epochs",
                     icon=":material/play_arrow:", width="stretch"):
            try:
                launch.start_job(aelab.preset(preset, name).validate())
                st.switch_page("pages/train.py")
            except (JobRefused, aelab.ConfigError, aelab.DataError) as e:
                st.error(str(e), icon=":material/block:")

st.subheader("Recent runs")
runs = state.all_runs()
if not runs:
    st.caption("No runs yet.")
for key, run in list(runs.items())[:6]:
    row = st.columns([4, 2, 2, 1])
    row[0].markdown(f"**{run.name}**" + (" · example" if run.read_only else ""))
    row[1].caption(f"{run.config.preset or run.config.model.arch} · {widgets.dataset_label(run.config.data.name)}")
    row[2].caption(f"{widgets.score(run)} · {run.epochs_done:g} epochs")
    if row[3].button("Open", key=f"open-{key}"):
        st.session_state["active_run"] = key
        st.switch_page("pages/reconstructions.py")
