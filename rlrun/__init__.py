"""rlrun: trust-region and proximal policy-gradient experiments (TRPO, PPO-Penalty, PPO-Clip, ACKTR, A2C).

The command line is ``rlrun``; from Python, :func:`train` runs one job as the command line would
and returns its summary, and :func:`load` gives a trained policy's ``act(obs)``. Both import torch
only when called, so ``import rlrun`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from rlrun.policy import Policy


def train(overrides: Sequence[str] = ()) -> dict:
    """``rlrun.train(["algo=trpo", "env=Pendulum-v1"])``: see :func:`rlrun.api.train`."""
    from rlrun.api import train as _train

    return _train(overrides)


def load(path: str | Path, device: str = "cpu") -> Policy:
    """The policy saved in a run directory or checkpoint: see :func:`rlrun.policy.load`."""
    from rlrun.policy import load as _load

    return _load(path, device)


__all__ = ["train", "load"]
