"""The visitor's language: picked in the sidebar and kept in the address (``?lang=zh``), else the browser's
preferred one; ``_`` translates a message into it (catalogs: aelab/locales, see aelab.i18n)."""
from __future__ import annotations

import streamlit as st

from aelab import i18n
from aelab.i18n import N_

PICKER = "lang_picker"


def language() -> str:
    """This session's language: the address's ``lang`` when it names one, else the one picked before, else the
    browser's preferred language (English when it prefers none of ours)."""
    asked = st.query_params.get("lang")
    if asked in i18n.LANGUAGES:
        st.session_state["lang"] = asked
    elif st.session_state.get("lang") not in (*i18n.LANGUAGES, i18n.PSEUDO):
        st.session_state["lang"] = i18n.preferred_language(_browser_languages())
    return st.session_state["lang"]


def _browser_languages() -> str | None:
    """The browser's Accept-Language header, or its locale (e.g. 'zh-CN'); None outside a browser."""
    try:
        return st.context.headers.get("Accept-Language") or st.context.locale
    except Exception:   # no request behind this run (a test, a bare script)
        return None


def current() -> str:
    """This session's language, as :func:`language` found it (for aelab functions that take ``lang``)."""
    return st.session_state.get("lang", i18n.DEFAULT)


def _(message: str) -> str:
    """``message`` in this session's language."""
    return i18n.gettext_for(current())(message)


def error_message(error: BaseException) -> str:
    """An error of aelab in this session's language, from its code and values (see aelab.i18n.error_message)."""
    return i18n.error_message(error, current())


def class_names(data_name: str, names) -> list[str]:
    """A data set's class names as this session shows them (the built-in ones translated)."""
    return i18n.class_names(data_name, names, current())


# a job's or task's status (aelab.jobs.Snapshot.status) as the pages say it
STATUSES = {"queued": N_("queued"), "starting": N_("starting"), "running": N_("running"), "finished": N_("finished"),
            "stopped": N_("stopped"), "timeout": N_("stopped at this server's time limit for a job"),
            "cancelled": N_("cancelled"), "failed": N_("failed")}


def status_label(status: str) -> str:
    return _(STATUSES.get(status, status))


def _picked() -> None:
    picked = st.session_state[PICKER]
    if picked in i18n.LANGUAGES:   # None when the visitor clicked the language already picked
        st.session_state["lang"] = picked
        st.query_params["lang"] = picked   # a shared link keeps the language


def language_picker() -> None:
    """English / 中文 in the sidebar, labelled in both so that either reader finds it."""
    current = language()
    if current in i18n.LANGUAGES:
        st.session_state[PICKER] = current
    st.segmented_control("Language · 语言", list(i18n.LANGUAGES), format_func=i18n.LANGUAGES.get, key=PICKER,
                         on_change=_picked, selection_mode="single")
