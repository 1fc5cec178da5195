"""The Latent space page's hover map: the 2-D or 3-D map drawn by a small HTML component (hover_map.html) that shows a
point's image and reconstruction on hover and its nearest neighbours in code space on a click, all in the
browser, from data sent once."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from aelab import latent

HTML = Path(__file__).with_name("hover_map.html").read_text()


def html(payload: dict) -> str:
    """The component's page for ``payload`` (:func:`aelab.latent.hover_map`). Class names come from uploads:
    '<' is escaped so that no string can close the script it sits in."""
    return HTML.replace("__DATA__", json.dumps(payload).replace("<", "\\u003c"))


def hover_section(run, model, ds, view: dict, task) -> None:
    """A toggle, then the map (2-D or 3-D, as the view), computed once per run and view and kept for the session."""
    if not st.toggle("See the images in the map: hover a point for its image, click it for its 10 nearest "
                     "neighbours in code space", key="lat_hover",
                     help="The images travel to your browser once (a sprite sheet), so hovering needs no server."):
        st.session_state.pop("lat_hover_cache", None)   # megabytes a session need not keep
        return
    proj, codes = task.result
    key = (run.fingerprint, view["n"], view["method"], tuple(sorted(view["options"].items())))
    cached = st.session_state.get("lat_hover_cache")
    if cached is None or cached[0] != key:
        with st.spinner("Preparing the images and the neighbours"):
            n = view["n"]
            cached = (key, html(latent.hover_map(model, ds.x_test[:n], ds.y_test[:n], ds.class_names,
                                                 proj.coords, codes)))
        st.session_state["lat_hover_cache"] = cached
    components.html(cached[1], height=540)
