"""rlrun's errors: one hierarchy, each kind with the exit status its one-line message ends a
command with. Library code raises them; only the entry points (the console scripts' ``main``
and the task function Hydra runs) print the line and exit."""


class RlrunError(Exception):
    """An error that ends a run or a command with one line on stderr and ``exit_code``."""

    exit_code = 2  # bad input, the shell convention for a usage error


class ConfigError(RlrunError, ValueError):
    """A config value that is well typed but not allowed; the message is one line."""


class EnvError(RlrunError, ValueError):
    """An environment rlrun cannot run; the message is one line."""


class CheckpointError(RlrunError, ValueError):
    """A checkpoint that is missing or cannot be read; the message is one line."""


class RunDirInUse(RlrunError, RuntimeError):
    """Another rlrun process holds the run directory; the message is one line."""


class OutputError(RlrunError, OSError):
    """A run's file that cannot be written (a full disk, a read-only directory); one line."""

    exit_code = 1


class NumericalError(RlrunError, RuntimeError):
    """A non-finite loss, gradient, KL, reward or parameter, named where it first appeared."""

    exit_code = 3


class Interrupted(BaseException):
    """A run stopped by a signal after saving its checkpoint: not an error, and not an
    ``Exception``, so that no ``except Exception`` on the way takes it for a crash. The entry
    points exit with ``exit_code``, 128 + the signal's number (130 for Ctrl-C)."""

    def __init__(self, exit_code: int):
        super().__init__(exit_code)
        self.exit_code = exit_code


def one_line(err: BaseException) -> str:
    """An error's message in one line: Hydra's and OmegaConf's span several, so the first line of
    the error and of its cause (which names the key)."""
    parts = [str(err).strip().splitlines()[0].rstrip(".")] if str(err).strip() else [type(err).__name__]
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        parts.append(str(cause).strip().splitlines()[0])
    return ": ".join(parts)
