"""Errors a user can act on. The CLI prints their message (one line, naming the file/line or config key) and exits 2."""


class DriftlabError(Exception):
    """Base class: bad input or environment, not a bug."""


class ConfigError(DriftlabError):
    """The config file or an override is invalid."""


class DataError(DriftlabError):
    """A data file or generator produced something unusable."""


class ModelError(DriftlabError):
    """A model could not be found or prepared."""
