"""User-facing errors. Anything a user can cause is an EdgetlError; everything else is a bug."""


class EdgetlError(Exception):
    """An error the user can fix; the CLI prints its message without a traceback."""


class ConfigError(EdgetlError):
    """A config key or value is invalid."""


class DataError(EdgetlError):
    """A data set, split or image cannot be used."""


class ModelError(EdgetlError):
    """An architecture, weights file or artifact cannot be used."""


class BackendUnavailable(EdgetlError):
    """An inference backend's library or device is missing."""
