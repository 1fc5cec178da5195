"""AE Lab's router (``streamlit_app.py`` runs :func:`main`): the page config, the shared sidebar, the chosen page."""
import streamlit as st

from pages.shared import i18n, server, sidebar
from pages.shared.i18n import _


@st.cache_resource
def _tune_server() -> bool:
    """Once per server process: fewer malloc arenas, the libraries' objects out of the garbage collector's
    way, a warm worker waiting for the first Start, and a watch that cancels the tasks of closed sessions."""
    from aelab.jobs import registry
    from aelab.runtime import fewer_malloc_arenas

    fewer_malloc_arenas()
    server.freeze_imported_objects()
    registry().warm_up()
    server.release_closed_sessions()
    return True


def pages() -> list:
    """The navigation, its titles in the session's language (known before st.navigation draws them)."""
    return [
        st.Page("pages/home.py", title=_("Home"), icon=":material/home:", default=True),
        st.Page("pages/train.py", title=_("Train"), icon=":material/model_training:"),
        st.Page("pages/reconstructions.py", title=_("Reconstructions"), icon=":material/compare:"),
        st.Page("pages/latent.py", title=_("Latent space"), icon=":material/scatter_plot:"),
        st.Page("pages/generate.py", title=_("Generate"), icon=":material/auto_awesome:"),
        st.Page("pages/pretrain.py", title=_("Pretraining"), icon=":material/school:"),
        st.Page("pages/runs.py", title=_("Runs"), icon=":material/inventory_2:"),
    ]


def main() -> None:
    """One run of the app's script: the page config, the server's one-time tuning, the session's language, the
    navigation, the shared sidebar, then the chosen page."""
    st.set_page_config(page_title="AE Lab", page_icon=":material/science:", layout="wide")
    _tune_server()
    i18n.language()
    nav = st.navigation(pages())
    sidebar.sidebar()
    nav.run()
