"""Errors the command line reports as one clear line (exit status 2) instead of a traceback."""


class ConfigError(ValueError):
    """An option value is out of range or cannot be honoured on this machine; the message names the option."""
