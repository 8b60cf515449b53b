"""Where a benchmark figure comes from: the commit that produced it and the machine it ran on.

The same command takes different times on different CPUs (torch picks AVX2 or AVX512 kernels for
its matrix products, and processors with the same kernels differ), so every speed figure is read
against the machine it names."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """The checkout's short commit, "+dirty" when rlrun/ or conf/ differ from it."""
    res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "rlrun", "conf"], cwd=ROOT, capture_output=True, text=True)
    return res.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def cpu_model() -> str:
    """The processor's name as the OS reports it (``model name`` in /proc/cpuinfo on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> str:
    """The processor, the cores, torch's version and the CPU kernels it picks here."""
    import torch

    return (f"{cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, torch {torch.__version__} on "
            f"{torch.backends.cpu.get_cpu_capability()} kernels")
