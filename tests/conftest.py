import os
import sys
from pathlib import Path

import pytest

RLRUN = [sys.executable, "-m", "rlrun.cli"]


@pytest.fixture
def run_rlrun(tmp_path):
    """Run the CLI in a subprocess from an empty temporary directory."""
    import subprocess

    def run(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
        full_env.pop("HYDRA_FULL_ERROR")
        return subprocess.run([*RLRUN, *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=full_env)

    run.cwd = tmp_path
    return run


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series in the event files under run_dir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
