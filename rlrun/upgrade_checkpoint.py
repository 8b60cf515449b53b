"""``rlrun-upgrade-checkpoint PATH...``: convert checkpoints of rlrun's first format (pickled objects)
to the data-only format that rlrun opens (:mod:`rlrun.checkpoint`).

Reading the first format means unpickling it, which runs any code the file holds: only for files
whose origin you trust (your own runs). Each file is converted in place; the original is kept
beside it as ``<name>.format1``. A run directory converts every checkpoint under ``checkpoints/``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path

from rlrun.checkpoint import FORMAT, REQUIRED_KEYS, EarlierFormat, load_checkpoint, save_checkpoint
from rlrun.errors import CheckpointError

WARNING = ("rlrun-upgrade-checkpoint unpickles each file, which runs any code it holds: "
           "convert only checkpoints whose origin you trust")


def _envs_as_data(pickled: bytes | None) -> list | None:
    """The first format pickled a SyncVectorEnv's sub-environments; the second keeps their data."""
    from rlrun.env_state import env_state

    if pickled is None:
        return None
    try:
        return [env_state(env) for env in pickle.loads(pickled)]
    except Exception:  # an env that no longer unpickles here: the resumed run resets its envs
        return None


def upgrade(path: Path) -> str:
    """Convert one checkpoint file in place; returns what was done, in a few words."""
    import torch

    try:
        load_checkpoint(path)
        return "already in the current format"
    except EarlierFormat:
        pass
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__})") from None
    if not isinstance(state, dict) or not REQUIRED_KEYS <= set(state):
        raise CheckpointError(f"checkpoint {path} is not an rlrun checkpoint (missing keys)")
    collector = state.get("collector")
    if isinstance(collector, dict) and not isinstance(collector.get("envs"), (list, type(None))):
        collector["envs"] = _envs_as_data(collector["envs"])
    state["format"] = FORMAT
    backup = path.with_name(path.name + ".format1")
    os.replace(path, backup)
    try:
        save_checkpoint(path, state)
        load_checkpoint(path)  # what rlrun will read
    except Exception:
        os.replace(backup, path)
        raise
    return f"converted (the original is kept as {backup.name})"


def _files(target: Path) -> list[Path]:
    if target.is_dir():
        folder = target / "checkpoints" if (target / "checkpoints").is_dir() else target
        return sorted(folder.glob("*.pt"))
    return [target]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rlrun-upgrade-checkpoint", description=__doc__.split("\n\n")[0],
                                     epilog=WARNING)
    parser.add_argument("paths", nargs="+", type=Path, help="checkpoint files or run directories")
    args = parser.parse_args(argv)
    print(f"rlrun-upgrade-checkpoint: warning: {WARNING}", file=sys.stderr)
    failed = False
    for target in args.paths:
        files = _files(target)
        if not files:
            print(f"rlrun-upgrade-checkpoint: error: no checkpoint at {target}", file=sys.stderr)
            failed = True
        for file in files:
            try:
                print(f"{file}: {upgrade(file)}")
            except (CheckpointError, OSError) as err:
                print(f"rlrun-upgrade-checkpoint: error: {err}", file=sys.stderr)
                failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
