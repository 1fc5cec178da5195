"""The Runs page's view of many runs at once: settings against final metrics, filtered in Python."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from aelab import figures
from aelab.runs import Run
from aelab.sweeps import hparam_rows
from pages.shared.i18n import _, current

MAX_FILTERS = 6   # filters shown: the settings that vary, first ones first


def hparams_section(runs: dict[str, Run]) -> None:
    """Pick a family: its runs' differing settings and final metrics as parallel coordinates and a table, both
    limited to the values picked in the filters."""
    families = sorted({r.family for r in runs.values()})
    st.subheader(_("Settings against results"))
    c = st.columns([1, 3])
    shown_family = {"autoencoder": _("autoencoder"), "gan": _("GAN"), "classifier": _("classifier")}
    family = c[0].selectbox(_("Family"), families, key="hp_family", format_func=lambda f: shown_family.get(f, f),
                            help=_("Runs of one family share their settings and metrics."))
    rows, settings, metrics = hparam_rows(r for r in runs.values() if r.family == family)
    if len(rows) < 2 or not settings:
        c[1].caption(_("Two runs of this family with different settings are needed to compare settings."))
        return
    table = pd.DataFrame(rows)
    filters = st.columns(min(len(settings), MAX_FILTERS))
    keep = pd.Series(True, index=table.index)
    for column, name in zip(filters, settings[:MAX_FILTERS]):
        values = sorted(table[name].astype(str).unique())
        picked = column.multiselect(name, values, default=values, key=f"hp_filter_{name}")
        keep &= table[name].astype(str).isin(picked)
    shown = table[keep]
    if len(shown) == 0:
        st.info(_("No run has these values."), icon=":material/filter_alt_off:")
        return
    color = c[1].selectbox(_("Colour by"), metrics or [None], key="hp_color") if metrics else None
    axes = st.multiselect(_("Axes of the chart"), [*settings, *metrics], default=[*settings[:6], *metrics[:3]],
                          key="hp_axes", help=_("More than a dozen axes crowd the chart: pick those you compare."))
    st.plotly_chart(figures.parallel_figure(shown.to_dict("records"), [a for a in settings if a in axes],
                                            [m for m in metrics if m in axes], color, lang=current()),
                    key="hp_parallel")
    st.caption(_("{shown} of {total} runs. Click a column's header to sort; the filters above choose the runs of "
                 "both the chart and the table.").format(shown=len(shown), total=len(table)))
    st.dataframe(shown.sort_values(metrics[0]) if metrics else shown, hide_index=True, key="hp_table")
