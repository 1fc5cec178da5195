"""What every page shares: cached data and runs, the sidebar, small drawing helpers."""
from __future__ import annotations

import streamlit as st

import aelab
from aelab import data as data_mod


@st.cache_data(show_spinner=False)
def default_dataset() -> tuple[str, str]:
    return data_mod.default_dataset()


def sidebar() -> None:
    name, why = default_dataset()
    with st.sidebar:
        st.markdown("### :material/science: AE Lab")
        st.caption(f"Data set: **{name}**  \n{why}")
