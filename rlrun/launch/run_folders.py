"""Checks on the folders a run or sweep writes into, made before Hydra creates them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rlrun.checkpoint import resume_command
from rlrun.errors import ConfigError

# What rlrun and Hydra write into a run folder by opening it (atomic renames replace a link instead).
WRITTEN_IN_PLACE = ("rlrun.log", "eval.json", ".rlrun.lock", ".hydra", ".hydra/config.yaml", ".hydra/hydra.yaml",
                    ".hydra/overrides.yaml", "checkpoints")

def check_no_links(run_dir: Path) -> None:
    """No file that a run writes in place is a symbolic link planted in its folder (it would be
    overwritten or appended to wherever it points)."""
    for name in WRITTEN_IN_PLACE:
        if (run_dir / name).is_symlink():
            raise ConfigError(f"{run_dir / name} is a symbolic link; rlrun does not write through links in a run "
                              f"folder: remove it")

def check_writable(key: str, path: str) -> None:
    """Try to make (and remove) a directory where the run's output would go; check its name's length."""
    target = p = Path(path).expanduser().absolute()
    while not os.path.isdir(p):  # False, not an error, for a name too long to look up
        p = p.parent
    name_max, path_max = os.pathconf(p, "PC_NAME_MAX"), os.pathconf(p, "PC_PATH_MAX")
    too_long = [part for part in target.parts if len(part.encode()) > name_max]
    if too_long or len(str(target).encode()) >= path_max:
        what = f"a name of {len(too_long[0].encode())} bytes" if too_long else f"{len(str(target).encode())} bytes"
        shown = path if len(path) <= 60 else f"{path[:60]}..."
        raise ConfigError(f"{key}={shown} is too long ({what}; the file system allows {name_max} per name, "
                          f"{path_max} in all)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rlrun-check-", dir=p))
    except OSError as err:
        raise ConfigError(f"{key}={path} cannot be written ({err.strerror}); choose another directory") from None

def check_unused_run_dir(path: str) -> None:
    """A new run never writes into a directory that holds another run (its summary, checkpoints or
    event files, also those of a run still going): that would overwrite it and mix two logs."""
    if not str(path).strip():
        raise ConfigError("hydra.run.dir is empty: name a directory for the run (the default is under outputs/)")
    run_dir = Path(path).expanduser()
    used = run_dir.is_dir() and ((run_dir / "summary.json").exists() or (run_dir / "checkpoints").exists()
                                 or any(run_dir.glob("events.out.tfevents.*")))
    if used:
        raise ConfigError(f"hydra.run.dir={path} already holds a run: continue it with {resume_command(run_dir)}, "
                          f"or choose another directory")

def hold(run_dir: Path) -> None:
    """This process takes the run directory's lock before Hydra writes its ``.hydra/`` there, so a
    second run into a directory whose first run is still setting up changes nothing in it."""
    from rlrun.checkpoint import hold_run_dir
    from rlrun.errors import RunDirInUse

    try:
        hold_run_dir(run_dir)
    except RunDirInUse as err:
        raise ConfigError(str(err)) from None
