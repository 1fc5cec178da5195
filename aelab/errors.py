"""The errors AE Lab raises on purpose. Each message says what was wrong and what to do; pages show it
as one line. They live in one bottom module so that every layer can raise them without importing upwards."""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which field and what is allowed."""


class DataError(RuntimeError):
    """A data set is missing or damaged; the message says which file and how to get it."""


class UploadError(DataError):
    """An uploaded (or given) image file was rejected; the message says why."""


class RunError(RuntimeError):
    """A run is missing, damaged, read-only, or a name is invalid or taken."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where and what to try."""
