"""Home: what AE Lab is, the data set, one-click recipes, recent runs."""
import streamlit as st

import aelab
from aelab import data
from aelab.jobs import JobRefused
from aelab.presets import PRESETS
from pages.shared import launch, state, widgets
from pages.shared.i18n import _, error_message
from pages.shared.sidebar import through_router

through_router()

st.title("AE Lab")
st.markdown(_(
    "An autoencoder laboratory in your browser. An **autoencoder** learns to copy its input through a narrow "
    "**bottleneck**, so it must discover a compact code for it. Vary how it is constrained and you get the ideas "
    "of chapter 17 of *Hands-On Machine Learning*:"))
c = st.columns(4)
c[0].markdown(_("**Bottleneck** · a 30-number code for a 784-pixel image: the stacked autoencoder."))
c[1].markdown(_("**Denoising** · corrupt the input with noise or dropout, ask for the clean image back."))
c[2].markdown(_("**Sparsity** · many code units, few active at once (L1 or KL penalty)."))
c[3].markdown(_("**Variational** · a Gaussian code you can *sample* from to draw new images."))

name = state.current_dataset_name()
label = widgets.dataset_label(name)
if label != name:
    why = _("Your upload; choose another data set in the sidebar")
elif name == "fashion-mnist":
    why = _(data.FASHION_FOUND).format(folder=state.dataset_sources().get(name, ""))
elif state.default_dataset()[0] == "digits":
    why = _(data.FASHION_MISSING)
else:
    why = _("Chosen in the sidebar")
st.info(_("Data set in use: **{name}**. {why}.").format(name=label, why=why), icon=":material/dataset:")

st.subheader(_("Start a recipe"))
st.caption(_("One click trains the book's recipe on **{name}** in the background and opens the Train page.").format(
    name=label))
cols = st.columns(4)
for i, (preset, (description, _model, train)) in enumerate(PRESETS.items()):
    with cols[i % 4]:
        if st.button(preset, key=f"quick-{preset}",
                     help=_("{description}; {epochs} epochs").format(description=_(description), epochs=train.epochs),
                     icon=":material/play_arrow:", width="stretch"):
            try:
                launch.start_job(aelab.preset(preset, name).validate())
                st.switch_page("pages/train.py")
            except (JobRefused, aelab.ConfigError, aelab.DataError) as e:
                st.error(error_message(e), icon=":material/block:")

st.subheader(_("Recent runs"))
runs = state.all_runs()
if not runs:
    st.caption(_("No runs yet."))
for key, run in list(runs.items())[:6]:
    row = st.columns([4, 2, 2, 1])
    row[0].markdown(f"**{run.name}**" + (_(" · example") if run.read_only else ""))
    row[1].caption(f"{run.config.preset or run.config.model.arch} · {widgets.dataset_label(run.config.data.name)}")
    row[2].caption(_("{score} · {epochs:g} epochs").format(score=widgets.score(run), epochs=run.epochs_done))
    if row[3].button(_("Open"), key=f"open-{key}"):
        st.session_state["active_run"] = key
        st.switch_page("pages/reconstructions.py")
