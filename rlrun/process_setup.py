"""The process around a run: torch's settings, the device, and the global random generators."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from rlrun.errors import ConfigError


def configure_torch(threads: int, deterministic: bool) -> None:
    """``threads`` > 0 sets torch's intra-op threads (1 is fastest for these small MLPs), at most
    one per core of the machine the run is on (a sweep job's machine may have fewer)."""
    if threads > 0:
        torch.set_num_threads(min(threads, os.cpu_count() or 1))
    if deterministic:
        torch.use_deterministic_algorithms(True)
    torch.distributions.Distribution.set_default_validate_args(False)  # checked by construction, costly per step


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is not allowed here: torch sees no CUDA device; use device=cpu or device=auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
