"""The end of a sweep: every job that failed, named with its error, and a non-zero exit.

A failing job does not stop the others: its task returns NaN (an Optuna trial then counts as
failed) and its ``summary.json`` records why. This Hydra callback runs in the driver process
with any launcher, reads the summaries of the sweep's jobs, and lists all the failures, not
only the first as Hydra would.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

FAILED = ("failed", "crashed")


def sweep_jobs(sweep_dir: Path, since: float = 0.0) -> list[Path]:
    """The job directories under ``sweep_dir`` that a sweep started after ``since`` (a time.time())."""
    return sorted(d.parent for d in sweep_dir.glob("*/.hydra") if d.stat().st_mtime >= since)


def job_failure(job_dir: Path) -> str | None:
    """Why a finished sweep job failed, from its summary.json; None if it did not."""
    try:
        result = json.loads((job_dir / "summary.json").read_text())
    except FileNotFoundError:
        return "no summary.json: the job ended before the run started"
    except (OSError, ValueError) as err:
        return f"summary.json cannot be read ({err})"
    if result.get("status") not in FAILED:
        return None
    error = result.get("error") or result["status"]
    return f"{error} (traceback in {job_dir / 'rlrun.log'})" if result["status"] == "crashed" else error


class FailedJobsReport(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time() - 1.0  # file times have a coarse resolution on some file systems

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = sweep_jobs(sweep_dir, self.started)
        failures = [(job.name, error) for job in jobs if (error := job_failure(job)) is not None]
        if not failures:
            return
        lines = [f"rlrun: error: {len(failures)} of {len(jobs)} jobs in {sweep_dir} failed:"]
        lines += [f"  {name}: {error}" for name, error in failures]
        print("\n".join(lines), file=sys.stderr)
        sys.exit(1)
