"""Checkpoints: everything needed to evaluate or continue a run, written atomically.

torch is imported where a checkpoint is read or written, so the CLI can import this module and
answer at once."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
from pathlib import Path
from typing import Any, Callable, Iterator


class OutputError(OSError):
    """A run's file that cannot be written (a full disk, a read-only directory); one line."""


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)``, then rename ``tmp`` to ``path``: a crash or a full disk mid-write never leaves a
    torn file at ``path`` (the previous one stays) nor a partial ``.tmp`` beside it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, Exception):
            reason = err.strerror if isinstance(err, OSError) and err.strerror else (str(err).splitlines() or [type(err).__name__])[0]
            raise OutputError(f"{path} could not be written ({reason})") from err
        raise


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # through a Python file, a full disk raises OSError (ENOSPC)
            torch.save(state, f)

    write_atomically(path, write)


def resume_command(run_dir: Path, sweep: bool = False) -> str:
    """The command that continues the run in ``run_dir`` (``sweep``: every unfinished job of the sweep
    in ``run_dir``), quoted for a POSIX shell."""
    return f"rlrun {'-m ' if sweep else ''}{shlex.quote(f'resume={run_dir}')}"


class RunDirInUse(RuntimeError):
    """Another rlrun process holds the run directory; the message is one line."""


@contextlib.contextmanager
def lock_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.rlrun.lock`` (an flock, released when the process ends, however it ends) while
    a run writes there, so a second run or resume into it is refused instead of mixing two runs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".rlrun.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise RunDirInUse(f"{run_dir} is in use by another rlrun process (pid {holder}); "
                              f"wait for it to end, or stop it first") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


class CheckpointError(ValueError):
    """A checkpoint that is missing or cannot be read; the message is one line."""


REQUIRED_KEYS = {"config", "steps", "actor", "critic", "algo", "rng"}


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or not REQUIRED_KEYS <= set(state):
        raise CheckpointError(f"checkpoint {path} is not an rlrun checkpoint (missing keys)")
    return state
