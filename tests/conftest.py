import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

torch.set_num_threads(1)  # in-process updates of small networks: one thread is fastest (the CLI's torch_threads default)

# A suite started in the background by a non-interactive shell (`pytest &`) inherits Ctrl-C ignored,
# and so would every rlrun it starts (an ignored signal stays ignored across exec): the Ctrl-C tests
# need what a terminal gives, so the suite takes Python's default back and its children start with it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

RLRUN = [sys.executable, "-m", "rlrun.cli"]
REPO = Path(__file__).resolve().parent.parent


def spawn_rlrun(cwd: Path, *args: str, prefix: tuple = (), **kwargs) -> subprocess.Popen:
    """The CLI started in a subprocess from ``cwd``, importing this checkout, with the one-line
    errors users see (no HYDRA_FULL_ERROR); ``prefix``: a command to run it under."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([*map(str, prefix), *RLRUN, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


@pytest.fixture
def run_rlrun(tmp_path):
    """Run the CLI in a subprocess from an empty temporary directory."""
    import subprocess

    def run(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # tests check the one-line errors
        full_env.update(env or {})
        return subprocess.run([*RLRUN, *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=full_env)

    run.cwd = tmp_path
    return run


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series in the event files under run_dir as (step, value) pairs in step order:
    rlrun.report.read_scalars (what rlrun-report reads), as lists for easy comparison."""
    from rlrun.report import read_scalars as read_series

    return {tag: list(zip(steps.astype(int).tolist(), values.tolist()))
            for tag, (steps, values) in read_series(run_dir).items()}
