"""Train: pick a recipe or build a model, start it in the background, watch it learn."""
import streamlit as st

import aelab
from aelab.jobs import JobRefused, registry
from pages.shared import launch, train_form, train_live, widgets
from pages.shared.i18n import _
from pages.shared.sidebar import through_router
from pages.shared.sweep_form import sweep_panel

through_router()


def start(cfg: aelab.RunConfig) -> None:
    """Start the validated ``cfg`` under the optional run name; a refusal says why."""
    try:
        name = st.session_state.get("run_name") or None
        launch.start_job(cfg, aelab.runs.check_name(name) if name else None)
    except (JobRefused, aelab.RunError, aelab.ConfigError, aelab.DataError) as e:
        widgets.refusal(e)


st.title(_("Train"))
train_form.init_form()
train_form.draw_form()
cfg = None
with widgets.guard(_("Checking the settings")):
    cfg = train_form.form_config()
    st.query_params.from_dict(train_form.address(cfg))
running = registry().get(st.session_state.get("job_id"))
busy = running is not None and not running.finished
if st.button(_("Start training"), type="primary", icon=":material/play_arrow:", disabled=cfg is None or busy,
             key="start", help=_("Trains in the background; you can switch pages and come back.")):
    start(cfg)
if cfg is not None:
    st.caption(_("Share link: this page's address holds the settings; anyone opening it gets the same form."))
with st.container(key="sweep_panel"):   # keys: the screenshots script finds the sections by them
    sweep_panel(cfg)
with st.container(key="live_view"):
    train_live.job_panel(cfg)
