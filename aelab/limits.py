"""Every bound on what a visitor or a file can make AE Lab spend, one setting each.

A bound is read from ``AELAB_MAX_<THING>_<UNIT>`` when set, else its default, which is lower in hosted
mode (``AELAB_HOSTED=1``) where strangers share one server. :func:`check` raises a
:class:`aelab.errors.LimitError` with a stable code and the numbers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import LimitError
from .i18n import N_


def hosted() -> bool:
    """Hosted demo mode (AELAB_HOSTED=1): strangers share the server; each sees only their own runs."""
    return os.environ.get("AELAB_HOSTED", "") not in ("", "0", "false")


@dataclass(frozen=True)
class Bound:
    setting: str          # the environment variable that overrides it
    local: float          # default on your own machine
    hosted: float         # default in hosted mode
    unit: str             # (units and words marked N_: pages show them translated, see aelab.i18n)
    what: str             # what is measured, for the message

    def value(self) -> float:
        raw = os.environ.get(self.setting)
        return float(raw) if raw else (self.hosted if hosted() else self.local)


BOUNDS = {
    "upload_bytes": Bound("AELAB_MAX_UPLOAD_MB", 100, 100, N_("MB"), N_("the file")),
    "upload_images": Bound("AELAB_MAX_UPLOAD_IMAGES", 100_000, 100_000, N_("images"), N_("the number of images")),
    "upload_decompressed": Bound("AELAB_MAX_UNZIPPED_MB", 1024, 1024, N_("MB"), N_("the decompressed size")),
    "image_pixels": Bound("AELAB_MAX_IMAGE_MPIXELS", 16.8, 16.8, N_("megapixels"), N_("one image")),
    "upload_pixels": Bound("AELAB_MAX_UPLOAD_MPIXELS", 2000, 1000, N_("megapixels"),
                           N_("the number of pixels to decode (all images at their own size)")),
    "model_memory": Bound("AELAB_MAX_MODEL_MB", 4096, 1024, N_("MB"),
                          N_("the memory to train this model (weights, gradients, optimiser state, activations)")),
    "worker_memory": Bound("AELAB_MAX_WORKER_MB", 8192, 2048, N_("MB"),
                           N_("a job's worker process (data beyond what its imports use)")),
    "epochs": Bound("AELAB_MAX_EPOCHS", float("inf"), float("inf"), N_("epochs"),
                    N_("the training of one run started from the app")),
    "job_minutes": Bound("AELAB_MAX_JOB_MINUTES", float("inf"), 15, N_("minutes"),
                         N_("a training job's time (it then stops, and saves what it has as status 'timeout')")),
    "visitor_uploads": Bound("AELAB_MAX_VISITOR_UPLOADS_MB", float("inf"), 200, N_("MB"),
                             N_("your stored data sets with this one")),
}
UNIT_SCALE = {"MB": 1e6, "megapixels": 1e6, "images": 1, "minutes": 60, "epochs": 1}


def limit(code: str) -> float:
    """The bound ``code`` in its own unit (MB, megapixels, images)."""
    return BOUNDS[code].value()


def check(code: str, amount: float, error: type[LimitError] = LimitError, what: str | None = None) -> None:
    """Raise ``error`` when ``amount`` (in base units: bytes, pixels, images) is above the bound ``code``;
    ``what`` names the thing measured when the bound's own words are too general."""
    bound = BOUNDS[code]
    scale = UNIT_SCALE[bound.unit]
    if amount > bound.value() * scale:
        raise error(code, limit=bound.value(), got=amount / scale, unit=bound.unit, what=what or bound.what,
                    setting=bound.setting)
