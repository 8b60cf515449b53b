"""The process around a run: torch's settings, the device, and the global random generators."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import sys
from typing import Any

import numpy as np
import torch

from rlrun.errors import ConfigError


def configure_torch(threads: int, deterministic: bool) -> None:
    """``threads`` > 0 sets torch's intra-op threads (1 is fastest for these small MLPs), at most
    one per core of the machine the run is on (a sweep job's machine may have fewer)."""
    keep_freed_memory()
    if threads > 0:
        torch.set_num_threads(min(threads, os.cpu_count() or 1))
    if deterministic:
        torch.use_deterministic_algorithms(True)
    torch.distributions.Distribution.set_default_validate_args(False)  # checked by construction, costly per step


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_LIMIT = 1 << 30  # blocks up to 1 GiB from the heap; freed heap kept until 1 GiB lies free at its top


def keep_freed_memory() -> bool:
    """On Linux with glibc, serve tensors from the process's heap and keep freed heap memory for
    the next ones (``mallopt``). By default glibc maps a large block afresh from the OS and gives
    freed memory back, so an op whose output is a few hundred KB (the activations of 8 stacked
    seeds' minibatches) can pay a page fault per 4 KB of it, every time: thousands of faults an
    update of a batched group. The process keeps its peak heap instead. Returns whether it applied
    (not on other C libraries or systems)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, HEAP_LIMIT)) and bool(libc.mallopt(M_TRIM_THRESHOLD, HEAP_LIMIT))
    except (OSError, AttributeError):  # no C library by that name, or one without mallopt
        return False


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
