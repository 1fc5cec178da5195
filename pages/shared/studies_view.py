"""The Runs page's saved pretraining studies: a table, and download or delete one."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from aelab.runs import Study
from pages.shared import state, widgets
from pages.shared.i18n import _


def studies_section(studies: dict[str, Study]) -> None:
    """The saved pretraining studies: a table, and download or delete one (open it on the Pretraining page)."""
    st.subheader(_("Pretraining studies"))
    source = {True: _("example"), False: _("yours")}
    rows = [{_("study"): s.name, _("source"): source[s.read_only], _("encoders"): ", ".join(s.meta["encoders"]),
             _("data"): widgets.dataset_label(s.meta["data"]), _("budgets"): ", ".join(map(str, s.config.labels)),
             _("seeds"): s.config.seeds, _("seconds"): s.meta.get("seconds"), _("created"): s.meta.get("created")}
            for s in studies.values()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="studies_table")
    names = {k: study.name for k, study in studies.items()}
    key = st.selectbox(_("Study"), list(studies), format_func=names.get, key="studies_manage")
    study = studies[key]
    c = st.columns([2, 2, 1])
    c[0].download_button(_("Download (zip: study.json, results.json)"), study.archive(), f"{study.name}.zip",
                         mime="application/zip", icon=":material/download:", key="studies_download")
    c[1].page_link("pages/pretrain.py", label=_("See its chart on the Pretraining page"), icon=":material/school:")
    if study.read_only:
        c[2].caption(_("Example studies are read-only."))
        return
    sure = c[2].checkbox(_("Yes, delete {study}").format(study=study.name), key="studies_confirm")
    if c[2].button(_("Delete"), disabled=not sure, icon=":material/delete:", key="studies_delete"):
        with widgets.guard(_("Deleting")):
            state.user_store().delete(study.name)
            st.session_state.pop("studies_confirm", None)
            st.rerun()
