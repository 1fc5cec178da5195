"""Streamlit AppTest: every page renders without an exception."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")

TIMEOUT = 60  # the first run imports torch


def test_home_renders():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "AE Lab"
    assert "Data set in use" in at.info[0].value
