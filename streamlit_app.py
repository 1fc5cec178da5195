"""AE Lab: the app's script, as ``streamlit run streamlit_app.py`` (or ``make run``) runs it; the router is
:mod:`pages.shared.router`.

Streamlit runs this script as ``__main__`` and leaves it there as the process's main module, so multiprocessing
imports it (as ``__mp_main__``) into every worker it starts: the guard keeps the app out of the workers.
"""
if __name__ == "__main__":
    from pages.shared import router

    router.main()
