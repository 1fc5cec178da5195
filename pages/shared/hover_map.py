"""The Latent space page's hover map: the 2-D or 3-D map drawn by a small HTML component (hover_map.html) that
shows a point's image and reconstruction on hover and its nearest neighbours in code space on a click, all in
the browser, from data sent once."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st
import streamlit.components.v1 as components

from aelab.i18n import N_
from pages.shared import widgets
from pages.shared.i18n import _, class_names, current

HTML = Path(__file__).with_name("hover_map.html").read_text()
SECONDS_PER_IMAGE = 0.4 / 1000   # the sprite sheets and the neighbours: about 4 s for 10,000 images here


# The component's words ({i}, {label}, {k}: filled in by the component)
WORDS = {"thumbnails": N_("Thumbnails on the map"), "hint": N_("Hover a point to see its image."),
         "howto2d": N_("Wheel: zoom · drag: pan · double-click: reset"),
         "howto3d": N_("Drag: turn · wheel: zoom · double-click: reset"),
         "image": N_("image {i} · {label}"), "imageRecon": N_("image {i} · {label} · its reconstruction"),
         "nearest": N_("{k} nearest in code space"), "toImage": N_("to image {i}")}


def html(payload: dict, translate=str) -> str:
    """The component's page for ``payload`` (:func:`aelab.latent.hover_map`), its words passed through
    ``translate`` (a session's ``_``). Class names come from uploads: '<' is escaped so that no string can
    close the script it sits in."""
    def script_safe(value) -> str:
        return json.dumps(value).replace("<", "\\u003c")
    words = {key: translate(word) for key, word in WORDS.items()}
    return HTML.replace("__TEXT__", script_safe(words)).replace("__DATA__", script_safe(payload))


def hover_section(run, view: dict, coords: np.ndarray) -> None:
    """A toggle, then the map of the projection ``coords`` (n, dims): its data are a background task (the
    images, the reconstructions and the neighbours cost the server nothing), shared by every session asking
    for the same map; the page this session drew last is kept, so a rerun does not rebuild it."""
    if not st.toggle(_("See the images in the map: hover a point for its image, click it for its 10 nearest "
                       "neighbours in code space"), key="lat_hover",
                     help=_("The images travel to your browser once (a sprite sheet), so hovering needs no server.")):
        st.session_state.pop("lat_hover_cache", None)   # megabytes a session need not keep
        return
    n, dims = view["n"], view["dims"]
    task = widgets.task("hover_map", run, n, np.ascontiguousarray(coords, dtype=np.float32).tobytes(), dims)
    payload = widgets.task_result(task, 1 + n * SECONDS_PER_IMAGE, _("Preparing the images and the neighbours"))
    if payload is None:
        return
    cached = st.session_state.get("lat_hover_cache")
    if cached is None or cached[0] is not task or cached[1] != current():
        shown = {**payload, "classes": class_names(run.config.data.name, payload["classes"])}
        cached = (task, current(), html(shown, _))
        st.session_state["lat_hover_cache"] = cached
    components.html(cached[2], height=540)
