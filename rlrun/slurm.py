"""What a run inside a SLURM job needs from SLURM: its name in squeue, and whether a SIGTERM is
a pre-emption that SLURM will requeue. Outside SLURM (no SLURM_JOB_ID) both are no-ops."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess

log = logging.getLogger("rlrun")


def _scontrol(*args: str) -> str | None:
    """``scontrol``'s output, or None where it fails or is missing."""
    if shutil.which("scontrol") is None:
        return None
    try:
        done = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def job_id() -> str | None:
    """This process's SLURM job, or None outside SLURM."""
    return os.environ.get("SLURM_JOB_ID") or None


def in_job() -> bool:
    return job_id() is not None


def name_job(name: str) -> None:
    """Rename this SLURM job (a submitit array task is named after the whole array) so that
    squeue shows the run; best effort."""
    if in_job():
        _scontrol("update", f"JobId={job_id()}", f"JobName={name}")


def preempted() -> bool:
    """Whether SLURM has pre-empted this job (``scontrol show job`` has a PreemptTime)."""
    info = (_scontrol("show", "job", job_id()) or "") if in_job() else ""
    return any(field.startswith("PreemptTime=") and field != "PreemptTime=None" for field in info.split())


def wait_for_requeue() -> None:
    """After a pre-emption's SIGTERM and the save: stay alive until SLURM ends the job at the end of
    its grace time. A job that exits by itself first is recorded as failed (or completed) and
    SLURM does not requeue it; requeued, it continues from the checkpoint."""
    log.warning("pre-empted by SLURM: checkpoint saved; waiting for SLURM to requeue this job, "
                "which then continues from it")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        signal.pause()
