"""The training loop: collect a rollout, let the algorithm update, log, checkpoint, summarise.

Nothing a user ran is lost: ``checkpoints/last.pt`` is refreshed every ``checkpoint_every``
steps and at the end; Ctrl-C / SIGTERM finish the iteration, save and exit 130 / 143; a
non-finite value stops the run with a one-line error and keeps the last good checkpoint;
``resume=<run dir>`` continues a run bit-exactly (sync envs, same machine).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlrun.algos.registry import algorithms
from rlrun.checkpoint import load_checkpoint, lock_run_dir, resume_command, save_checkpoint
from rlrun.config import check_resume_agrees, sweep_dir_of, tuned_settings
from rlrun.core.diagnostics import check_finite, policy_snapshot, update_diagnostics
from rlrun.errors import Interrupted, NumericalError, OutputError, RlrunError
from rlrun.episodes import Episode
from rlrun.logger import ProgressReporter, TensorBoardLogger
from rlrun.run_state import RunState
from rlrun.process_setup import configure_torch, resolve_device, seed_everything
from rlrun.signals import StopRequest, stop_on_signals
from rlrun.run_summary import run_summary, write_summary
from rlrun.sweep_jobs import sweep_stopping

log = logging.getLogger("rlrun")


def log_to_files(message: str) -> None:
    """An error record for the run's log file (rlrun.log) only: the console shows Hydra's traceback."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def quietly(action: Callable[[], object], what: str) -> None:
    """Finish a run's resources without letting a failure (an async worker already gone, a full
    disk) replace the run's outcome, which is known and saved by then."""
    try:
        action()
    except Exception as err:
        log.warning("%s failed: %s: %s", what, type(err).__name__, err)


class Checkpoints:
    """``checkpoints/last.pt`` every ``checkpoint_every`` env steps (and ``step_<N>.pt`` with
    ``keep_checkpoints``), ``best.pt`` on a new best evaluation. Events up to a checkpoint's step
    reach the disk first: a resumed run starts after that step and would not write them again."""

    def __init__(self, run_dir: Path, cfg: DictConfig, run: RunState, tb: TensorBoardLogger, wall: Callable[[], float]):
        self.dir, self.cfg, self.run, self.tb, self.wall = run_dir / "checkpoints", cfg, run, tb, wall
        self.config = OmegaConf.to_container(cfg, resolve=True)
        every = cfg.checkpoint_every
        self.next_step = (run.steps // every + 1) * every if every else None

    def save(self, name: str) -> None:
        self.tb.flush()
        save_checkpoint(self.dir / name, self.run.state_dict(self.config, self.wall()))

    def save_if_due(self) -> None:
        if self.next_step is not None and self.run.steps >= self.next_step:
            if self.cfg.keep_checkpoints:
                self.save(f"step_{self.run.steps}.pt")
            self.save("last.pt")
            self.next_step += self.cfg.checkpoint_every


def train(cfg: DictConfig, run_dir: Path, multirun: bool = False, overridden: Sequence[str] = ()) -> dict:
    """Run ``cfg`` to ``total_steps``; writes events, checkpoints and summary.json into ``run_dir``,
    which no other rlrun process may use meanwhile; returns the summary.
    ``overridden``: the config keys set on the command line, which the HParams entry shows."""
    # The handlers go in before anything is built, so a Ctrl-C during setup (env creation, the event
    # file) also ends in a saved, resumable state and a summary, not a traceback.
    with lock_run_dir(run_dir), stop_on_signals() as stop, worker_errors_to_log():
        return _train(cfg, run_dir, multirun, overridden, stop)


@contextlib.contextmanager
def worker_errors_to_log() -> Iterator[None]:
    """gymnasium's AsyncVectorEnv reports a worker's exception (with the worker's traceback) as
    warnings before raising it again in this process: they go to rlrun.log, not the console,
    which gets rlrun's one line."""
    show = warnings.showwarning

    def to_log(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' hook
        if filename.endswith("async_vector_env.py") and "ERROR" in str(message):
            log_to_files(str(message))
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = to_log
    try:
        yield
    finally:
        warnings.showwarning = show


def _train(cfg: DictConfig, run_dir: Path, multirun: bool, overridden: Sequence[str], stop: StopRequest) -> dict:
    try:  # set-up: a crash here is recorded like one in the loop (summary.json, rlrun.log)
        configure_torch(cfg.torch_threads, cfg.deterministic)
        checkpoint = resume_checkpoint(cfg, run_dir)
        seed_everything(cfg.seed)
        run = RunState.build(cfg, resolve_device(cfg.device))
        if checkpoint is not None:
            run.load_state_dict(checkpoint, cfg.seed)
            log.info("resuming %s from step %d", run_dir, run.steps)
        start, first_iteration, update_time = time.monotonic(), run.iteration, 0.0
        wall = lambda: run.wall_before + time.monotonic() - start  # noqa: E731
        # Events past the checkpoint (written before a crash) are dropped, so no step appears twice.
        tb = TensorBoardLogger(run_dir, cfg, purge_step=run.steps + 1 if checkpoint is not None else None)
        checkpoints = Checkpoints(run_dir, cfg, run, tb, wall)
        reporter = ProgressReporter(cfg.total_steps, "lines" if multirun and cfg.progress in ("auto", "bar")
                                    else cfg.progress, f"{cfg.algo.name} {cfg.env.id}")  # no bars in sweep workers
        log_start(cfg, run_dir)
    except Exception as exc:
        record_setup_crash(cfg, run_dir, exc)
        raise
    log_every = cfg.log_every or algorithms()[cfg.algo.name].log_every
    status, error, failure = "running", None, None
    try:
        while run.steps < cfg.total_steps and not stop:
            try:  # Alg step 1-2: T steps in each env, then advantages
                batch, episodes = run.collector.collect(run.steps)
            except NumericalError as err:
                raise NumericalError(f"{cfg.algo.name}: {err} (iteration {run.iteration})") from None
            logged = logged_iteration(cfg, run, log_every)
            pi_old = policy_snapshot(run.actor, batch) if logged else None
            update_start = time.monotonic()
            metrics = run.algo.update(batch, progress=run.steps / cfg.total_steps)  # the algorithm's box
            update_s = time.monotonic() - update_start
            update_time += update_s
            diagnostics = update_diagnostics(run.actor, pi_old, batch, cfg.algo.name) if logged else {}
            after_update(cfg, run, tb, reporter, checkpoints, stop, wall, metrics, logged, diagnostics, episodes,
                         update_s)
            if multirun and not stop and sweep_stopping(run_dir):  # the driver was stopped: any launcher
                stop.ask(signal.SIGINT, "the sweep was stopped")
        status = final_evaluation(cfg, run, tb, checkpoints, stop)
    except (NumericalError, OutputError) as err:  # the state is consistent: it stopped between steps
        status, error, failure = "failed", str(err), err
    except BaseException as exc:
        status = "crashed"  # state may be half-updated: keep the last good checkpoint
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log_to_files(f"crashed at step {run.steps} (iteration {run.iteration}):\n{traceback.format_exc()}")
        raise
    finally:
        reporter.close()
        if status in ("completed", "interrupted"):
            try:
                checkpoints.save("last.pt")
            except OutputError as err:
                status, error, failure = "failed", str(err), err
        summary = run_summary(cfg, run, status, wall(), update_time / max(run.iteration - first_iteration, 1), error)
        try:
            write_summary(run_dir, summary)
        except OutputError as err:  # a full disk: the outcome still reaches the console below
            log.error("%s", err)
        close_run(cfg, run, tb, overridden)
    _report_end(cfg, run_dir, multirun, summary, failure, stop)
    return summary


def iteration_steps(cfg: DictConfig) -> int:
    """The env steps of one iteration: T steps in each of the N envs."""
    return cfg.algo.n_steps * cfg.env.num_envs


def logged_iteration(cfg: DictConfig, run: RunState, log_every: int) -> bool:
    """Whether this iteration's update metrics are written (and the diagnostics' passes run): every
    log_every-th, and the last."""
    return (run.iteration + 1) % log_every == 0 or run.steps + iteration_steps(cfg) >= cfg.total_steps


def after_update(cfg: DictConfig, run: RunState, tb: TensorBoardLogger, reporter: ProgressReporter,
                 checkpoints: Checkpoints, stop: StopRequest, wall: Callable[[], float], metrics: dict[str, float],
                 logged: bool, diagnostics: dict[str, float], episodes: list[Episode], update_s: float) -> None:
    """A run's iteration after its update: its metrics with the ``diagnostics`` (core.diagnostics, on a
    ``logged`` iteration), the finite check, the counters, the logs, a due evaluation and checkpoint."""
    metrics.update(diagnostics)
    check_finite(metrics, [run.actor, run.critic], run.iteration, cfg.algo.name)
    run.steps += iteration_steps(cfg)
    run.iteration += 1
    run.tracker.add(episodes, wall())
    log_iteration(run, tb, reporter, metrics if logged else None, episodes, update_s, wall())
    if run.evaluator is not None and run.evaluator.due(run.steps):
        evaluate(run, tb, checkpoints, stop)
    checkpoints.save_if_due()


def final_evaluation(cfg: DictConfig, run: RunState, tb: TensorBoardLogger, checkpoints: Checkpoints,
                     stop: StopRequest) -> str:
    """The final policy always evaluated; the run's status: completed once every step and the final
    evaluation are done (even if a stop came during them), interrupted otherwise."""
    if run.evaluator is not None and run.steps >= cfg.total_steps and not evaluated_at(run, run.steps):
        evaluate(run, tb, checkpoints, stop)
    finished = run.steps >= cfg.total_steps and (run.evaluator is None or evaluated_at(run, run.steps))
    return "completed" if finished else "interrupted"


def record_setup_crash(cfg: DictConfig, run_dir: Path, exc: Exception) -> None:
    """summary.json (status ``crashed``, the error) and the traceback in rlrun.log, for a run that
    failed before its first step. A resumed run keeps its earlier summary's figures."""
    failed = isinstance(exc, RlrunError)  # a cause the message names; anything else is a crash
    error = str(exc) if failed else f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    log_to_files(f"failed while setting up the run: {error}" if failed
                 else f"crashed while setting up the run:\n{traceback.format_exc()}")
    try:
        summary = json.loads((run_dir / "summary.json").read_text()) if cfg.resume else {}
    except (OSError, ValueError):
        summary = {}
    summary = {"algo": cfg.algo.name, "env": cfg.env.id, "seed": cfg.seed, "total_steps": cfg.total_steps,
               "steps_done": 0, "iterations": 0, **summary, "status": "failed" if failed else "crashed", "error": error}
    quietly(lambda: write_summary(run_dir, summary), "writing summary.json")


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> dict | None:
    if not cfg.resume:
        return None
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    check_resume_agrees(checkpoint["config"], cfg, cfg.resume)
    return checkpoint


def log_start(cfg: DictConfig, run_dir: Path) -> None:
    log.info("%s on %s, seed %d, %d steps -> %s", cfg.algo.name, cfg.env.id, cfg.seed, cfg.total_steps, run_dir)
    if cfg.tuned_file:
        values = " ".join(f"{key}={value}" if now == value else f"{key}={value} (overridden: {now})"
                          for key, value, now in tuned_settings(cfg))
        log.info("tuned values from %s (tuned=none: without them): %s", cfg.tuned_file, values)


def log_iteration(run: RunState, tb: TensorBoardLogger, reporter: ProgressReporter, metrics: dict[str, float] | None,
                   episodes: list[Episode], update_s: float, wall_s: float) -> None:
    """The episodes that ended, the update's metrics on a logged iteration (None otherwise), progress."""
    fps = run.steps / wall_s
    if episodes:
        tb.scalars({"rollout/ep_return": float(np.mean([e.ret for e in episodes])),
                    "rollout/ep_return_mean": run.tracker.mean_return(),
                    "rollout/ep_length": float(np.mean([e.length for e in episodes]))}, run.steps)
    if metrics is not None:
        tb.scalars({**metrics, "time/fps": fps, "time/update_s": update_s}, run.steps)
        tb.write_layout()
    reporter.update(run.steps, fps, run.tracker.mean_return())


def evaluated_at(run: RunState, steps: int) -> bool:
    return run.evaluator.last is not None and run.evaluator.last.step == steps


def evaluate(run: RunState, tb: TensorBoardLogger, checkpoints: Checkpoints, stop: StopRequest) -> None:
    result = run.evaluator.run(run.actor, run.obs_normalizer, run.steps, stop=lambda: bool(stop))
    if result is None:
        log.warning("evaluation at step %d stopped by the signal; it runs again when the run is resumed", run.steps)
        return
    tb.scalars({"eval/mean_return": result.mean_return, "eval/std_return": result.std_return}, run.steps)
    log.info("eval at step %d: %.1f ± %.1f over %d episodes%s", run.steps, result.mean_return, result.std_return,
             run.evaluator.episodes, " (new best)" if result.is_best else "")
    if result.is_best:
        checkpoints.save("best.pt")


def close_run(cfg: DictConfig, run: RunState, tb: TensorBoardLogger, overridden: Sequence[str]) -> None:
    quietly(lambda: tb.hparams(cfg, overridden), "writing the HParams entry")
    quietly(tb.close, "closing the event file")
    quietly(run.envs.close, "closing the training envs")
    if run.evaluator is not None:
        quietly(run.evaluator.close, "closing the evaluation env")


def _report_end(cfg: DictConfig, run_dir: Path, multirun: bool, summary: dict, failure: Exception | None, stop) -> None:
    """The run's outcome on the console: an error naming how to resume, the interruption, or done."""
    resume_hint = f"resume with: {resume_command(run_dir)}"
    if multirun:
        resume_hint += f" (the whole sweep: {resume_command(sweep_dir_of(run_dir), sweep=True)})"
    if failure is not None:
        if (run_dir / "checkpoints" / "last.pt").is_file():
            raise type(failure)(f"{summary['error']}; the last good checkpoint is kept, {resume_hint}")
        raise type(failure)(f"{summary['error']}; it came before the first checkpoint, so there is nothing to resume")
    if summary["status"] == "interrupted":
        log.warning("stopped at step %d; checkpoint saved; %s", summary["steps_done"], resume_hint)
        stop.hand_over()
        raise Interrupted(stop.exit_code)
    log_done(cfg, summary)


def log_done(cfg: DictConfig, summary: dict) -> None:
    """The line a completed run ends with."""
    final = "-" if summary["final_return"] is None else f"{summary['final_return']:.1f}"
    solved = "not solved" if summary["solved_step"] is None else f"solved at step {summary['solved_step']}"
    log.info("done: %d env steps (total_steps %d, whole iterations of %d) in %.1f s, %.0f steps/s; "
             "final return %s, %s", summary["steps_done"], cfg.total_steps, iteration_steps(cfg),
             summary["wall_s"], summary["fps"], final, solved)
