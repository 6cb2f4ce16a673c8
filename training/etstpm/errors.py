"""The toolkit's errors: expected failures that the command line reports as one clear line (exit status 2).

Every one derives from EtstpmError, so `cli.main` catches them in one place; anything else is a bug and keeps its
traceback. The classes are also importable from the modules that raise them (etstpm.data.DatasetError, ...).
They stay ValueErrors, as they were before the common base.
"""


class EtstpmError(ValueError):
    """Base of the errors the command line reports as `etstpm <command>: error: <message>`, exit status 2."""


class ConfigError(EtstpmError):
    """An option value is out of range or cannot be honoured on this machine; the message names the option."""


class DatasetError(EtstpmError):
    """A dataset folder or file is missing, empty, unreadable or inconsistent; the message names it."""


class WeightsError(EtstpmError):
    """The weights file is missing, unreadable or does not fit torchvision's resnet18; the message says which."""


class RunError(EtstpmError):
    """The run folder is missing files or was not finished; the message says what to do."""


class MetricError(EtstpmError):
    """Inputs that cannot be scored (shape mismatch, NaN scores, an integration limit outside (0, 1], ...)."""
