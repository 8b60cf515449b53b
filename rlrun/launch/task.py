"""The task function Hydra runs for each job, and the exit statuses of a single run."""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from rlrun.config import override_key, validate
from rlrun.errors import Interrupted, RlrunError, one_line

log = logging.getLogger("rlrun")


def run_task(cfg: DictConfig) -> float | None:
    """One job: train and return the objective (Optuna's value). A single run's failure prints one
    line and exits with the error's status; a sweep job's is logged and returns NaN, so that the
    other jobs go on (``sweep_jobs`` names it at the end). torch is imported here, not before."""
    from rlrun import slurm
    from rlrun.checkpoint import lock_run_dir
    from rlrun.sweep_jobs import sweep_stopping
    from rlrun.run_summary import objective_value
    from rlrun.trainer import train

    if not gc.get_freeze_count():
        # What is imported by now (torch alone is over 100,000 objects) lives as long as the process:
        # kept out of every later garbage collection, the ones at exit included. Once per process,
        # so that a sweep worker's later jobs do not freeze an earlier job's garbage.
        gc.freeze()
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overridden = [override_key(o) for o in hydra_cfg.overrides.task]  # the HParams table shows them
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        validate(cfg)
        if multirun:
            slurm.name_job(f"rlrun_{cfg.algo.name}_{cfg.env.id}_seed{cfg.seed}")  # squeue shows the run
            if sweep_stopping(run_dir):
                log.warning("not started: the sweep was stopped")
                return float("nan")
            with lock_run_dir(run_dir):  # before looking at, or clearing, what an earlier attempt left
                previous = continue_earlier_attempt(cfg, run_dir)
                if previous is not None:
                    return previous
                return objective_value(train(cfg, run_dir, multirun=True, overridden=overridden), cfg.objective)
        return objective_value(train(cfg, run_dir, multirun=False, overridden=overridden), cfg.objective)
    except RlrunError as err:
        if multirun:
            log.error("job failed: %s", err)
            return float("nan")
        print(f"rlrun: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except Interrupted as stop:
        # scancel'd (a pre-emption waits to be requeued instead), or a stopped sweep's worker: a
        # result for the driver, which then names the job as interrupted
        if multirun and (slurm.in_job() or sweep_stopping(run_dir)):
            return float("nan")
        sys.exit(stop.exit_code)  # Ctrl-C on a sweep stops the sweep, not only this job
    except Exception as err:
        if not multirun:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise  # Hydra prints the whole traceback
            print(f"rlrun: error: crashed: {type(err).__name__}: {one_line(err)} "
                  f"(traceback in {run_dir / 'rlrun.log'})", file=sys.stderr)
            sys.exit(1)
        log.error("job crashed: %s: %s (traceback in %s)", type(err).__name__, err, run_dir / "rlrun.log")
        return float("nan")


def continue_earlier_attempt(cfg: DictConfig, run_dir: Path) -> float | None:
    """A sweep job whose directory holds an earlier attempt of itself (requeued, pre-empted,
    resumed with ``rlrun -m resume=<sweep dir>``): its objective if that attempt completed;
    otherwise None, after setting ``resume`` to continue from its checkpoint or clearing the files
    of an attempt that died before its first one."""
    from rlrun.sweep_jobs import clear_dead_attempt, earlier_attempt
    from rlrun.run_summary import objective_value

    state, summary = earlier_attempt(run_dir)
    if state == "completed":
        log.info("%s already completed (%d env steps); not run again", run_dir, summary["steps_done"])
        return objective_value(summary, cfg.objective)
    if state == "resumable":
        with open_dict(cfg):
            cfg.resume = str(run_dir)
    elif state == "dead":
        clear_dead_attempt(run_dir)
    return None


def run_group_task(cfgs: list[DictConfig], run_dirs: list[Path], overridden: list[list[str]]) -> tuple[list[float], int | None]:
    """The jobs of one group of seeds (``hydra/launcher=batched``), trained together; each job's
    objective (NaN for one that failed), and the exit status of a stop (None: not stopped). As
    :func:`run_task` for a sweep job: a job that completed before is not run again, one with a
    checkpoint continues from it; seeds that continue from different steps are trained as
    separate groups (a group's seeds step together)."""
    from rlrun import slurm
    from rlrun.checkpoint import load_checkpoint, lock_run_dir
    from rlrun.run_summary import objective_value
    from rlrun.seed_group import train_group
    from rlrun.sweep_jobs import sweep_stopping

    if not gc.get_freeze_count():
        gc.freeze()  # as run_task
    values: list[float] = [float("nan")] * len(cfgs)
    starting: dict[int, list[int]] = {}  # the step a job starts from -> the jobs
    for i, (cfg, run_dir) in enumerate(zip(cfgs, run_dirs)):
        try:
            validate(cfg)
            if sweep_stopping(run_dir):
                log.warning("%s not started: the sweep was stopped", run_dir)
                continue
            with lock_run_dir(run_dir):
                previous = continue_earlier_attempt(cfg, run_dir)
            if previous is not None:
                values[i] = previous
                continue
            step = load_checkpoint(run_dir / "checkpoints" / "last.pt")["steps"] if cfg.resume else 0
            starting.setdefault(step, []).append(i)
        except RlrunError as err:
            log.error("job %s failed: %s", run_dir, err)
    if starting:
        slurm.name_job(f"rlrun_{cfgs[0].algo.name}_{cfgs[0].env.id}_seeds")
    for members in starting.values():
        try:
            summaries = train_group([cfgs[i] for i in members], [run_dirs[i] for i in members], overridden[members[0]])
        except Interrupted as stop:
            if slurm.in_job() or any(sweep_stopping(run_dirs[i]) for i in members):
                continue
            return values, stop.exit_code
        except Exception as err:  # noqa: BLE001 - the group crashed: its jobs' summaries say so, the sweep goes on
            log.error("group of seeds crashed: %s: %s", type(err).__name__, err)
            continue
        for i, summary in zip(members, summaries):
            values[i] = objective_value(summary, cfgs[i].objective) if summary["status"] == "completed" else float("nan")
    return values, None
