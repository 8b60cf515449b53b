"""Errors that stop a run with one line on stderr (shared by the rollout, the algorithms and the trainer)."""


class NumericalError(RuntimeError):
    """A non-finite loss, gradient, KL, reward or parameter, named where it first appeared."""


class ConfigError(ValueError):
    """A config value that is well typed but not allowed; the message is one line."""
