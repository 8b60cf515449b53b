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
        full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # tests check the one-line errors
        full_env.update(env or {})
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
