"""AE Lab: the router. Sets the page config, draws the shared sidebar and runs the chosen page."""
import streamlit as st

st.set_page_config(page_title="AE Lab", page_icon="🧪", layout="wide")

from pages import common  # noqa: E402  (after set_page_config)

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
]

nav = st.navigation(PAGES)
common.sidebar()
nav.run()
