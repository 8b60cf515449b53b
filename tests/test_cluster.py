"""Sweeps on a real single-node SLURM (loopback only, in a private network namespace), through
Hydra's submitit launcher: time limits with requeue, pre-emption with requeue, and resuming an
interrupted sweep through the launcher. Several minutes (SLURM delays a requeued job by about two
minutes), so they run where the machine allows it: root (``tests/local_slurm.py`` starts the
cluster, installing Debian's SLURM on first use) and the submitit launcher
(``pip install -e ".[sweep]"``); elsewhere they skip, saying why."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import local_slurm
from tests.conftest import read_scalars, spawn_rlrun, wait_until
from tests.test_sweeps import has
from rlrun.checkpoint import load_checkpoint

# 1 ms an env step, 1,024-step iterations: the jobs outlast the limits whatever the machine, and stop within a second
PACED = ("env=tests.faulty_envs:Paced-v0", "env.num_envs=2", "algo.n_steps=512")
pytestmark = [
    pytest.mark.skipif(not has("hydra_plugins.hydra_submitit_launcher"), reason="pip install 'rlrun[slurm]'"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a local SLURM needs root"),
]


@pytest.fixture(scope="module")
def slurm():
    """Run a command inside the local SLURM's namespace: slurm(*argv, **subprocess.run kwargs)."""
    started_here = not local_slurm.running()
    if started_here:
        try:
            local_slurm.start()
        except local_slurm.Unavailable as err:
            pytest.skip(f"no local SLURM: {err}")
    yield local_slurm.run
    if started_here:
        local_slurm.stop()


def sweep_in_slurm(cwd: Path, *args: str) -> subprocess.Popen:
    """rlrun -m ... through the submitit launcher, inside the local SLURM's namespace."""
    return spawn_rlrun(cwd, "-m", *args, "progress=off", "hydra/launcher=submitit_slurm",
                       "hydra.launcher.partition=debug", prefix=tuple(local_slurm.in_namespace([])))


def assert_completed_once(job: Path, total_steps: int) -> None:
    """Completed to total_steps, and TensorBoard has every iteration's step exactly once."""
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] >= total_steps, summary
    steps = [s for s, _ in read_scalars(job)["time/fps"]]
    assert steps == sorted(set(steps)) and steps[-1] == summary["steps_done"]


def assert_both_came_back_and_completed(proc: subprocess.Popen, sweep: Path, total_steps: int = 62000) -> None:
    """The sweep of two jobs ended well, each job completed once after it hit the limit and came back."""
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    jobs = sorted(d.parent for d in sweep.glob("*/*/*/.hydra"))
    assert len(jobs) == 2
    for job in jobs:
        assert_completed_once(job, total_steps)
        assert "resuming" in (job / "rlrun.log").read_text()


def test_a_time_limit_with_requeue_finishes_every_job(slurm, tmp_path):
    """submitit's SIGUSR2, 25 s before a 1-minute limit: each job saves, submitit requeues it, and
    the requeued job continues from its checkpoint in the same directory. SLURM checks its time
    limits only every so often, so the warning may come at any point of the last half minute or
    so; the env takes 1 ms a step, so the jobs' 62,000 steps take longer than the whole limit and
    cannot finish before the warning on a machine of any speed."""
    sweep = tmp_path / "sweep"
    proc = sweep_in_slurm(tmp_path, "seed=0,1", *PACED, "total_steps=62000", "checkpoint_every=4096",
                          "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=25",
                          "hydra.launcher.max_num_timeout=5", f"hydra.sweep.dir={sweep}")
    assert_both_came_back_and_completed(proc, sweep)


def test_a_preempted_job_is_requeued_and_continues_from_its_checkpoint(slurm, tmp_path):
    """PreemptMode=REQUEUE with a grace time: the job saves on SIGTERM and waits; SLURM requeues it."""
    sweep = tmp_path / "sweep"
    proc = sweep_in_slurm(tmp_path, "seed=0", *PACED, "total_steps=60000", "checkpoint_every=4096",
                          f"hydra.sweep.dir={sweep}")
    wait_until(lambda: list(sweep.glob("*/*/seed0*/checkpoints/last.pt")), 300, interval=0.5)
    high = slurm("sbatch", "-p", "high", "-c", str(os.cpu_count()), "-o", "/dev/null", "--wrap", "sleep 5",
                 capture_output=True, text=True)
    assert high.returncode == 0, high.stderr
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    job = next(sweep.glob("*/*/seed0*"))
    log = (job / "rlrun.log").read_text()
    assert "pre-empted by SLURM" in log and "resuming" in log
    assert_completed_once(job, 60000)


def test_a_cancelled_job_saves_and_the_driver_names_it_with_the_resume_command(slurm, tmp_path):
    """A plain scancel (SIGTERM, no requeue): the job saves, reports itself to the driver as
    interrupted (no traceback, no endless wait without accounting), and the driver says how to resume."""
    sweep = tmp_path / "sweep"
    proc = sweep_in_slurm(tmp_path, "seed=0", "total_steps=10000000", "checkpoint_every=4096",
                          f"hydra.sweep.dir={sweep}")
    wait_until(lambda: list(sweep.glob("*/*/seed0*/checkpoints/last.pt")), 300, interval=0.5)
    jobs = slurm("squeue", "-h", "-o", "%i", capture_output=True, text=True).stdout.split()
    assert slurm("scancel", *jobs).returncode == 0
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert "interrupted at step" in err and f"rlrun -m resume={sweep}" in err
    job = next(sweep.glob("*/*/seed0*"))
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["steps_done"] == load_checkpoint(job / "checkpoints" / "last.pt")["steps"]


def test_an_interrupted_sweep_resumes_through_the_slurm_launcher(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    local = spawn_rlrun(tmp_path, "-m", "seed=0,1", "total_steps=20000", "checkpoint_every=512", "algo.n_steps=32",
                        "progress=off", f"hydra.sweep.dir={sweep}")
    wait_until(lambda: list(sweep.glob("*/*/seed0*/checkpoints/last.pt")), 120, interval=0.01)
    local.send_signal(signal.SIGTERM)
    local.communicate(timeout=60)
    assert local.returncode == 143

    proc = sweep_in_slurm(tmp_path, f"resume={sweep}")
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    jobs = sorted(d.parent for d in sweep.glob("*/*/*/.hydra"))
    assert [j.name[:5] for j in jobs] == ["seed0", "seed1"]
    for job in jobs:
        assert_completed_once(job, 20000)


def test_each_group_of_seeds_is_one_slurm_job(slurm, tmp_path):
    """hydra/launcher=batched_slurm: three seeds, one group, one SLURM job, three runs."""
    sweep = tmp_path / "sweep"
    proc = spawn_rlrun(tmp_path, "-m", "seed=0,1,2", "total_steps=2048", "progress=off",
                       "hydra/launcher=batched_slurm", "hydra.launcher.via.partition=debug",
                       "hydra.launcher.processes=1", f"hydra.sweep.dir={sweep}", prefix=tuple(local_slurm.in_namespace([])))
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert len([d for d in (sweep / ".submitit").iterdir() if d.is_dir()]) == 1  # one job
    for seed in (0, 1, 2):
        summary = json.loads(next(sweep.glob(f"*/*/seed{seed}/summary.json")).read_text())
        assert summary["status"] == "completed" and summary["steps_done"] == 2048


def test_a_time_limit_saves_a_group_and_the_requeued_job_regroups_its_seeds(slurm, tmp_path):
    """As test_a_time_limit_with_requeue_finishes_every_job, for one SLURM job holding two seeds (half
    the steps each: the job steps both seeds' envs, 1 ms a step)."""
    sweep = tmp_path / "sweep"
    proc = spawn_rlrun(tmp_path, "-m", "seed=0,1", *PACED, "total_steps=31000", "checkpoint_every=4096", "progress=off",
                       "hydra/launcher=batched_slurm", "hydra.launcher.via.partition=debug", "hydra.launcher.processes=1",
                       "hydra.launcher.via.timeout_min=1", "hydra.launcher.via.signal_delay_s=25",
                       "hydra.launcher.via.max_num_timeout=5", f"hydra.sweep.dir={sweep}",
                       prefix=tuple(local_slurm.in_namespace([])))
    assert_both_came_back_and_completed(proc, sweep, total_steps=31000)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
