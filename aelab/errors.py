"""The errors AE Lab raises on purpose. Each message says what was wrong and what to do; pages show it
as one line. Each has a stable ``code`` (a refusal above a bound: the bound's own code and its numbers).
They live in one bottom module so that every layer can raise them without importing upwards.

A message is a template of the catalog and its values, ``RunError("no run named {name!r}", name=name)``:
``str(error)`` is the English, and :func:`aelab.i18n.error_message` says it in a visitor's language from
``error.said`` (an :class:`aelab.i18n.Message`). (`make translations` extracts the first argument of these
classes, so give the template as a literal.)"""
from __future__ import annotations

from .i18n import LIMIT_MESSAGE, Message, number


class Said:
    """An error whose message is ``template`` filled with ``values``, kept whole in ``said`` (a Message; or
    give one made already as ``template``)."""

    def __init__(self, template: str = "", **values):
        self.said = template if isinstance(template, Message) else Message(template, **values)
        super().__init__(str(self.said))


class ConfigError(Said, ValueError):
    """A configuration value is invalid; the message says which field and what is allowed."""
    code = "config"


class DataError(Said, RuntimeError):
    """A data set is missing or damaged; the message says which file and how to get it."""
    code = "data"


class UploadError(DataError):
    """An uploaded (or given) image file was rejected; the message says why."""
    code = "upload"


class RunError(Said, RuntimeError):
    """A run is missing, damaged, read-only, or a name is invalid or taken."""
    code = "run"


class TrainingDiverged(Said, RuntimeError):
    """The loss became NaN or infinite; the message says where and what to try. ``result`` holds what was
    trained before (the trainer's FitResult, the model back at its last finite epoch), ``run_name`` the
    run it was saved as."""

    code = "diverged"

    def __init__(self, template: str, result=None, run_name: str | None = None, **values):
        super().__init__(template, **values)
        self.result, self.run_name = result, run_name


class LimitError(Said, Exception):
    """A request above one of the bounds in :mod:`aelab.limits`: a stable ``code`` (e.g. ``upload_pixels``),
    the ``limit`` and what was asked for (``got``) in ``unit``, and the ``setting`` that raises the bound.
    Its message is built from these (``what`` and ``unit`` are words of the catalog), so a page can say it in
    any language."""

    def __init__(self, code: str, *, limit: float, got: float, unit: str, what: str, setting: str):
        self.code, self.limit, self.got, self.unit, self.what, self.setting = code, limit, got, unit, what, setting
        super().__init__(Message(LIMIT_MESSAGE, what=Message(what), got=number(got), unit=Message(unit),
                                 limit=number(limit), setting=setting))


class UploadLimitError(LimitError, UploadError):
    """An upload or a given file is above a bound."""


class ModelLimitError(LimitError, ConfigError):
    """A model would need more memory than the bound allows."""


class SettingLimitError(LimitError, ConfigError):
    """A training setting (the epochs of a run) is above this server's bound."""

