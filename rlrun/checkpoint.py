"""Checkpoints: everything needed to evaluate or continue a run, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file, then rename: a crash mid-write never leaves a torn checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


class CheckpointError(ValueError):
    """A checkpoint that is missing or cannot be read; the message is one line."""


REQUIRED_KEYS = {"config", "steps", "actor", "critic", "algo", "rng"}


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or not REQUIRED_KEYS <= set(state):
        raise CheckpointError(f"checkpoint {path} is not an rlrun checkpoint (missing keys)")
    return state
