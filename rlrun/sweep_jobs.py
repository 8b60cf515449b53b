"""A sweep's job directories: what an earlier attempt of a job left there, and, at the end of a
sweep, every job that failed, named with its error, and a non-zero exit.

A sweep job that finds its own directory already used by an earlier attempt of the same job (a
requeued SLURM job, a pre-empted one, ``rlrun -m resume=<sweep dir>``) continues it: from its
checkpoint if it has one, skipped if it completed, from the start if it died before its first
checkpoint. A failing job does not stop the others: its task returns NaN (an Optuna trial then
counts as failed) and its ``summary.json`` records why. :class:`FailedJobsReport`, a Hydra
callback, runs in the driver process with any launcher, reads the summaries of all the sweep's
jobs, and lists all the failures, not only the first as Hydra would.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rlrun.checkpoint import resume_command
from rlrun.config import JOB_DIR_DEPTH, sweep_dir_of

FAILED = ("failed", "crashed")


def read_summary(job_dir: Path) -> dict:
    """The job's summary.json; FileNotFoundError without one, OSError / ValueError if unreadable."""
    return json.loads((job_dir / "summary.json").read_text())


def earlier_attempt(job_dir: Path) -> tuple[str, dict | None]:
    """What an earlier attempt of this job left in ``job_dir``: ("completed", its summary),
    ("resumable", summary or None: a checkpoint to continue from), ("dead", None: files of an
    attempt that died before its first checkpoint) or ("none", None)."""
    try:
        summary = read_summary(job_dir)
    except (OSError, ValueError):
        summary = None
    if summary is not None and summary.get("status") == "completed":
        return "completed", summary
    if (job_dir / "checkpoints" / "last.pt").is_file():
        return "resumable", summary
    if summary is not None or any(job_dir.glob("events.out.tfevents.*")):
        return "dead", None
    return "none", None


def clear_dead_attempt(job_dir: Path) -> None:
    """Remove the event files and summary of an attempt that left no checkpoint, so the job
    starts again with one event stream."""
    for path in [*job_dir.glob("events.out.tfevents.*"), job_dir / "summary.json"]:
        path.unlink(missing_ok=True)


def sweep_jobs(sweep_dir: Path) -> list[Path]:
    """Every job directory of the sweep in ``sweep_dir`` (JOB_DIR_DEPTH levels down: job_dir_name)."""
    return sorted(d.parent for d in sweep_dir.glob("/".join(["*"] * JOB_DIR_DEPTH + [".hydra"])) if d.is_dir())


def job_failure(job_dir: Path) -> str | None:
    """Why a sweep job did not complete (failed, crashed, interrupted), from its summary.json; None if it did."""
    try:
        result = read_summary(job_dir)
    except FileNotFoundError:
        return "not run: the sweep was stopped first" if sweep_stopping(job_dir) else \
            "no summary.json: the job ended before the run started"
    except (OSError, ValueError) as err:
        return f"summary.json cannot be read ({err})"
    if result.get("status") == "interrupted":
        return f"interrupted at step {result.get('steps_done')} (checkpoint saved)"
    if result.get("status") not in FAILED:
        return None
    error = result.get("error") or result["status"]
    return f"{error} (traceback in {job_dir / 'rlrun.log'})" if result["status"] == "crashed" else error


STOPPING = ".rlrun-stopping"  # in a sweep folder while a stopped sweep lets its running jobs save


def sweep_stopping(job_dir: Path) -> bool:
    """Whether the driver of the sweep this job belongs to was asked to stop."""
    return (sweep_dir_of(job_dir) / STOPPING).exists()


class FailedJobsReport(Callback):
    """Over every job of the sweep's directory, from each job's own summary.json: a resumed sweep
    (whose completed jobs were not run again) reports the outcome of the whole sweep.

    It also stops a sweep gently. Ctrl-C or SIGTERM in the driver leaves a marker in the sweep
    folder instead of raising at once (as joblib would, killing its workers while they save): each
    running job sees it after its current iteration, wherever a launcher runs it (joblib's
    processes, Ray's workers), saves and ends as interrupted; a job that had not started does not
    start; the report names them with the resume command. A second signal quits at once."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _stop(self, signum: int, frame: object) -> None:
        marker = self.sweep_dir / STOPPING
        if marker.exists():
            self._restore()
            signal.raise_signal(signum)  # to the handler from before the sweep: the CLI's, which quits at once
            return
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        marker.touch()
        print(f"rlrun: stopping the sweep: running jobs finish their iteration and save, no new job starts "
              f"({signal.Signals(signum).name} again to quit at once)", file=sys.stderr)

    def _restore(self) -> None:
        for sig, handler in getattr(self, "previous", {}).items():
            signal.signal(sig, handler)
        self.previous = {}

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._restore()
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = sweep_jobs(sweep_dir)
        # read while the stop's marker is there: it tells a job not run from one that ended early
        failures = [(str(job.relative_to(sweep_dir)), error) for job in jobs if (error := job_failure(job)) is not None]
        (sweep_dir / STOPPING).unlink(missing_ok=True)
        if not failures:
            print(f"rlrun: {len(jobs)} of {len(jobs)} jobs in {sweep_dir} completed; compare them with: "
                  f"rlrun-report {shlex.quote(str(sweep_dir))}", file=sys.stderr)
            return
        lines = [f"rlrun: error: {len(failures)} of {len(jobs)} jobs in {sweep_dir} did not complete:"]
        lines += [f"  {name}: {error}" for name, error in failures]
        if any(error.startswith(("interrupted", "not run")) for _, error in failures):
            lines.append(f"continue the unfinished jobs with: {resume_command(sweep_dir, sweep=True)}")
        print("\n".join(lines), file=sys.stderr)
        sys.exit(1)
