"""Checkpoints: everything needed to evaluate or continue a run, written atomically.

A checkpoint holds data only (tensors, numbers, strings, None, lists, tuples and dicts; numpy
arrays are stored as tensors with their dtype), so it is read with ``torch.load(weights_only=True)``
and opening one never runs code, wherever it came from. ``format`` says which layout it has;
checkpoints of the first layout (pickled objects) are refused with the command that converts them
(:mod:`rlrun.upgrade_checkpoint`). torch is imported where a checkpoint is read or written, so the
CLI can import this module and answer at once."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
from pathlib import Path
from typing import Any, Callable, Iterator

from rlrun.errors import CheckpointError, OutputError, RunDirInUse


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


FORMAT = 2  # 1: pickled objects (torch.load without weights_only); 2: data only
_NUMPY = "numpy"  # the key of a stored numpy value: {"numpy": tensor, "dtype": "<f8", "scalar": False}


def as_data(value: Any) -> Any:
    """``value`` with every numpy array or scalar replaced by a tensor and its dtype."""
    import numpy as np
    import torch

    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.kind not in "biufc":
            raise TypeError(f"a numpy value of dtype {array.dtype} cannot be stored in a checkpoint")
        return {_NUMPY: torch.from_numpy(array.copy()), "dtype": array.dtype.str, "scalar": isinstance(value, np.generic)}
    if isinstance(value, dict):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [as_data(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def from_data(value: Any) -> Any:
    """The inverse of :func:`as_data`."""
    import numpy as np

    if isinstance(value, dict):
        if _NUMPY in value and set(value) == {_NUMPY, "dtype", "scalar"}:
            array = value[_NUMPY].numpy().astype(np.dtype(value["dtype"]), copy=True)
            return array[()] if value["scalar"] else array
        return {k: from_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [from_data(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    data = {"format": FORMAT, **as_data(state)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # through a Python file, a full disk raises OSError (ENOSPC)
            torch.save(data, f)

    write_atomically(path, write)


def resume_command(run_dir: Path, sweep: bool = False) -> str:
    """The command that continues the run in ``run_dir`` (``sweep``: every unfinished job of the sweep
    in ``run_dir``), quoted for a POSIX shell."""
    return f"rlrun {'-m ' if sweep else ''}{shlex.quote(f'resume={run_dir}')}"


_HELD: dict[Path, int] = {}  # run directories this process holds -> the lock file's descriptor


def hold_run_dir(run_dir: Path) -> None:
    """Take ``run_dir/.rlrun.lock`` (an flock, released when the process ends, however it ends) for
    this process, so a second run or resume into the directory is refused instead of mixing two
    runs; a no-op where this process holds it already. The lock file is never followed through a
    symbolic link."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        key = run_dir.resolve(strict=True)
    except (OSError, RuntimeError) as err:  # a read-only file system, a symbolic-link loop
        raise RunDirInUse(f"{run_dir} cannot be used ({getattr(err, 'strerror', None) or err})") from None
    if key in _HELD:
        return
    path = run_dir / ".rlrun.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        reason = "it is a symbolic link" if os.path.islink(path) else err.strerror
        raise RunDirInUse(f"{path} cannot be opened ({reason}); refused") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RunDirInUse(f"{run_dir} is in use by another rlrun process (pid {holder}); "
                          f"wait for it to end, or stop it first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = fd


def release_run_dir(run_dir: Path) -> None:
    fd = _HELD.pop(run_dir.resolve(), None)
    if fd is not None:
        os.close(fd)


def release_run_dirs() -> None:
    """Every run directory this process holds (the Python API, whose process goes on)."""
    for key in list(_HELD):
        release_run_dir(key)


@contextlib.contextmanager
def lock_run_dir(run_dir: Path) -> Iterator[None]:
    """:func:`hold_run_dir` for the duration of the block (left held if it was held before)."""
    held_before = run_dir.resolve() in _HELD if run_dir.exists() else False
    hold_run_dir(run_dir)
    try:
        yield
    finally:
        if not held_before:
            release_run_dir(run_dir)


class EarlierFormat(CheckpointError):
    """A checkpoint of the first format (pickled objects): converted by rlrun-upgrade-checkpoint."""


REQUIRED_KEYS = {"config", "steps", "actor", "critic", "algo", "rng"}


def _is_run_config(config: Any) -> bool:
    return (isinstance(config, dict) and isinstance(config.get("algo"), dict) and "name" in config["algo"]
            and isinstance(config.get("env"), dict) and "id" in config["env"])


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, read as data only: a file that holds anything else (code, objects)
    is refused, and opening it runs nothing."""
    import pickle

    import torch

    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" not in str(err).lower():  # an object to import: not plain data
            raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint (UnpicklingError)") from None
        raise EarlierFormat(
            f"checkpoint {path} holds pickled objects (an earlier rlrun's format, or a file made to run code "
            f"when opened) and was not opened; if you trust where it came from, convert it once with: "
            f"rlrun-upgrade-checkpoint {shlex.quote(str(path))}") from None
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or not REQUIRED_KEYS <= set(state) or not _is_run_config(state["config"]):
        raise CheckpointError(f"checkpoint {path} is not an rlrun checkpoint (missing keys)")
    if "format" not in state:
        raise EarlierFormat(f"checkpoint {path} is in an earlier rlrun's format; if you trust where it came from, "
                            f"convert it once with: rlrun-upgrade-checkpoint {shlex.quote(str(path))}")
    if state["format"] != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {state['format']!r}, from a newer rlrun; "
                              f"this one reads format {FORMAT}")
    from rlrun.config import over_schema

    state = from_data(state)
    state["config"] = over_schema(state["config"])  # a checkpoint of an earlier version too
    return state
