"""One exception type for mistakes a user can fix.

The CLI turns a :class:`ConfigError` into one line on stderr and exit code 2, with no
traceback; anything else is a bug and keeps its traceback.
"""


class ConfigError(ValueError):
    """A bad spec, option, configuration or missing input. The message names the fix."""


class DataNotFoundError(ConfigError):
    """A data set could not be found locally or downloaded."""
