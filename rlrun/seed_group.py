"""Several seeds of one configuration trained in one process and updated together: a batched
sweep's group (``hydra/launcher=batched``).

Each seed stays a run of its own: its directory, event file, checkpoints, ``summary.json`` and
``rlrun.log``, resumable alone with ``rlrun resume=<its dir>``. What the seeds share is the
algorithm's update (``<Algorithm>.for_seeds``: their networks stacked, one optimiser step for all)
and the process's start-up. Everything drawn from the global random generators (network
initialisation, action sampling) is drawn with the seed's own generator state swapped in, so each
seed draws what its run alone would. A seed that fails (a NaN, an env that raises) stops alone,
keeping its last good checkpoint, and the others go on; Ctrl-C and SIGTERM save every seed.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from omegaconf import DictConfig, OmegaConf

from rlrun.algos.registry import algorithms
from rlrun.checkpoint import lock_run_dir, resume_command
from rlrun.config import sweep_dir_of
from rlrun.core.diagnostics import policy_snapshot, seeds_update_diagnostics, update_diagnostics
from rlrun.core.seeds import SeedBySeed, stacked_batch
from rlrun.core.written_gradients import applies
from rlrun.episodes import Episode
from rlrun.errors import Interrupted, NumericalError, OutputError
from rlrun.logger import ProgressReporter, TensorBoardLogger
from rlrun.process_setup import configure_torch, resolve_device, rng_state, seed_everything, set_rng_state
from rlrun.rollout import seeds_batch
from rlrun.run_state import RunState
from rlrun.run_summary import run_summary, write_summary
from rlrun.signals import StopRequest, stop_on_signals
from rlrun.sweep_jobs import sweep_stopping
from rlrun.trainer import (Checkpoints, after_update, close_run, final_evaluation, log_done, log_start, log_to_files,
                           logged_iteration, record_setup_crash, resume_checkpoint, worker_errors_to_log)

log = logging.getLogger("rlrun")


@dataclass
class SeedRun:
    """One seed of the group: its config, directory, run state and outcome."""

    cfg: DictConfig
    run_dir: Path
    run: RunState
    tb: TensorBoardLogger
    checkpoints: Checkpoints
    rng: dict[str, Any]  # the global generators' state as this seed left them
    log_file: logging.Handler
    first_iteration: int
    wall: Callable[[], float] = field(default=lambda: 0.0, repr=False)  # seconds, earlier sessions included
    update_time: float = 0.0
    status: str = "running"
    error: str | None = None
    episodes: list[Episode] | None = field(default=None, repr=False)  # those this iteration's rollout ended

    @contextlib.contextmanager
    def own_generators(self) -> Iterator[None]:
        """The global random generators (and this seed's log file) as this seed's run alone has them."""
        set_rng_state(self.rng)
        logging.getLogger().addHandler(self.log_file)
        try:
            yield
        finally:
            self.rng = rng_state()
            logging.getLogger().removeHandler(self.log_file)


class SeedShare:
    """A seed's part of the group's algorithm, where its RunState expects its own algorithm: what
    its checkpoint saves and restores is its own run's algorithm state."""

    def __init__(self, group: StackedAlgorithm, seed_run_index: int):
        self.group, self.index = group, seed_run_index

    def state_dict(self) -> dict:
        return self.group.algo.state_dict(self.group.row(self.index))

    def load_state_dict(self, state: dict) -> None:
        self.group.algo.load_state_dict(state, self.group.row(self.index))


class StackedAlgorithm:
    """The algorithm of the seeds still running, stacked; rebuilt without a seed that stopped."""

    def __init__(self, cfg: DictConfig, seeds: Sequence[SeedRun]):
        self.algo_cfg = OmegaConf.to_object(cfg.algo)
        self.algorithm = algorithms()[cfg.algo.name].algorithm
        self.members: list[int] = list(range(len(seeds)))
        self.algo = self._build(seeds)
        if isinstance(self.algo, SeedBySeed):
            log.info("%s: its maths is not stacked; the group's seeds update one after another", cfg.algo.name)

    def _build(self, seeds: Sequence[SeedRun]):
        """``<Algorithm>.for_seeds``; an algorithm without it: each seed's own, one after another."""
        actors, critics = [seeds[i].run.actor for i in self.members], [seeds[i].run.critic for i in self.members]
        numbers = [seeds[i].cfg.seed for i in self.members]
        if hasattr(self.algorithm, "for_seeds"):
            return self.algorithm.for_seeds(self.algo_cfg, actors, critics, numbers)
        return SeedBySeed([self.algorithm(self.algo_cfg, a, c, n) for a, c, n in zip(actors, critics, numbers)])

    def row(self, index: int) -> int:
        return self.members.index(index)

    def keep(self, seeds: Sequence[SeedRun], running: list[int]) -> None:
        """Rebuild over the ``running`` seeds (indices into ``seeds``), each keeping its state."""
        if running == self.members:
            return
        states = {i: self.algo.state_dict(self.row(i)) for i in running}
        self.members = running
        self.algo = self._build(seeds)
        for i in running:
            self.algo.load_state_dict(states[i], self.row(i))


def train_group(cfgs: Sequence[DictConfig], run_dirs: Sequence[Path], overridden: Sequence[str] = ()) -> list[dict]:
    """Run the seeds of ``cfgs`` (one config each, alike but for ``seed``) to ``total_steps``, the
    updates of all of them together; each writes into its ``run_dirs`` entry as a run alone would.
    Returns their summaries, in order."""
    with contextlib.ExitStack() as stack:
        for run_dir in run_dirs:
            stack.enter_context(lock_run_dir(run_dir))
        stop = stack.enter_context(stop_on_signals())
        stack.enter_context(worker_errors_to_log())
        formatter = stack.enter_context(_without_job_log_file())
        seeds, summaries = _train_group(list(cfgs), list(run_dirs), overridden, stop, formatter)
    failed = [seed for seed in seeds if seed.status in ("failed", "crashed")]
    for seed in failed:
        kept = "the last good checkpoint is kept, resume with: " + resume_command(seed.run_dir) if (
            seed.run_dir / "checkpoints" / "last.pt").is_file() else "it came before the first checkpoint"
        log.error("seed %d %s: %s; %s", seed.cfg.seed, seed.status, seed.error, kept)
    if any(seed.status == "interrupted" for seed in seeds):
        log.warning("stopped at step %d; every seed saved; resume with: %s (one seed: %s)",
                    max(seed.run.steps for seed in seeds), resume_command(sweep_dir_of(seeds[0].run_dir), sweep=True),
                    resume_command(seeds[0].run_dir))
        stop.hand_over()
        raise Interrupted(stop.exit_code)
    return summaries


@contextlib.contextmanager
def _without_job_log_file() -> Iterator[logging.Formatter]:
    """Hydra's job logging writes to one job's rlrun.log; a group's seeds each write their own
    (added around each seed's work). Yields the format of those files."""
    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    for handler in files:
        root.removeHandler(handler)
    try:
        yield files[0].formatter if files else logging.Formatter("[%(asctime)s] %(levelname)s %(message)s")
    finally:
        for handler in files:
            root.addHandler(handler)


def _file_log(run_dir: Path, formatter: logging.Formatter) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "rlrun.log")
    handler.setFormatter(formatter)
    return handler


def _set_up(cfgs: list[DictConfig], run_dirs: list[Path],
            formatter: logging.Formatter) -> tuple[list[SeedRun], StackedAlgorithm]:
    first = cfgs[0]
    configure_torch(first.torch_threads, first.deterministic)
    device = resolve_device(first.device)
    seeds: list[SeedRun] = []
    checkpoints = []
    for cfg, run_dir in zip(cfgs, run_dirs):
        log_file = _file_log(run_dir, formatter)
        logging.getLogger().addHandler(log_file)
        try:  # as a run alone: seeded, then built (the networks draw from the global generators)
            checkpoint = resume_checkpoint(cfg, run_dir)
            seed_everything(cfg.seed)
            run = RunState.build(cfg, device)
            tb = TensorBoardLogger(run_dir, cfg, purge_step=run.steps + 1 if checkpoint is not None else None)
        except Exception as exc:
            record_setup_crash(cfg, run_dir, exc)
            raise
        finally:
            logging.getLogger().removeHandler(log_file)
        seeds.append(SeedRun(cfg, run_dir, run, tb, None, rng_state(), log_file, 0))  # type: ignore[arg-type]  # checkpoints: below
        checkpoints.append(checkpoint)
    group = StackedAlgorithm(first, seeds)
    for index, (seed, checkpoint) in enumerate(zip(seeds, checkpoints)):
        seed.run.algo = SeedShare(group, index)
        with seed.own_generators():
            if checkpoint is not None:
                seed.run.load_state_dict(checkpoint, seed.cfg.seed)
                log.info("resuming %s from step %d", seed.run_dir, seed.run.steps)
            log_start(seed.cfg, seed.run_dir)
        seed.first_iteration = seed.run.iteration
    steps = {seed.run.steps for seed in seeds}
    if len(steps) > 1:
        raise ValueError(f"the seeds of a group must start at the same step, not at {sorted(steps)}")
    return seeds, group


def _train_group(cfgs: list[DictConfig], run_dirs: list[Path], overridden: Sequence[str], stop: StopRequest,
                 formatter: logging.Formatter) -> tuple[list[SeedRun], list[dict]]:
    seeds, group = _set_up(cfgs, run_dirs, formatter)
    cfg = cfgs[0]
    start = time.monotonic()
    for seed in seeds:  # each seed's wall clock continues its own earlier sessions'
        seed.wall = lambda before=seed.run.wall_before: before + time.monotonic() - start
        seed.checkpoints = Checkpoints(seed.run_dir, seed.cfg, seed.run, seed.tb, seed.wall)
    reporter = ProgressReporter(cfg.total_steps, "lines" if cfg.progress in ("auto", "bar") else cfg.progress,
                                f"{cfg.algo.name} {cfg.env.id} seeds {', '.join(str(c.seed) for c in cfgs)}")
    quiet = ProgressReporter(cfg.total_steps, "off", "")
    log_every = cfg.log_every or algorithms()[cfg.algo.name].log_every
    running = lambda: [i for i, s in enumerate(seeds) if s.status == "running"]  # noqa: E731
    try:
        while running() and seeds[running()[0]].run.steps < cfg.total_steps and not stop:
            for i in running():  # Alg step 1 for every seed, each with its own generators
                seed = seeds[i]
                with seed.own_generators(), _stops_alone(seed, "collecting a rollout"):
                    seed.episodes = seed.run.collector.run_envs(seed.run.steps)
            if running():
                _update(seeds, running(), group, cfg, log_every, stop, quiet)
                steps = seeds[running()[0]].run.steps if running() else cfg.total_steps
                returns = [seeds[i].run.tracker.mean_return() for i in running()]
                reporter.update(steps, steps / seeds[0].wall(), sum(returns) / len(returns) if returns else float("nan"))
        for seed in seeds:
            if seed.status == "running":
                _final_evaluation(seed, stop)
    except BaseException as exc:
        for seed in seeds:
            if seed.status == "running":
                seed.status = "crashed"
                seed.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                with seed.own_generators():
                    log_to_files(f"crashed at step {seed.run.steps} (iteration {seed.run.iteration}):\n"
                                 f"{traceback.format_exc()}")
        raise
    finally:
        reporter.close()
        summaries = [_finish(seed, overridden) for seed in seeds]
    return seeds, summaries


def _update(seeds: list[SeedRun], members: list[int], group: StackedAlgorithm, cfg: DictConfig, log_every: int,
            stop: StopRequest, quiet: ProgressReporter) -> None:
    """Alg step 2 onwards: the running seeds' batches, the group's update of them, then each seed's
    diagnostics, logs, evaluation and checkpoint as its run alone would have them. For MLP networks
    with a written-out head the batches and diagnostics of all seeds come from one pass each;
    otherwise each seed's collector makes its own batch (with pi_old, where a shared CNN kept it)."""
    group.keep(seeds, members)
    steps = seeds[members[0]].run.steps
    logged = logged_iteration(cfg, seeds[members[0]].run, log_every)
    collectors = [seeds[i].run.collector for i in members]
    actors = [collector.actor for collector in collectors]
    together = applies(actors[0], collectors[0].critic)
    batches = None if together else [collector.batch() for collector in collectors]
    batch = seeds_batch(collectors) if together else stacked_batch(batches)
    pi_old = [policy_snapshot(a, b) for a, b in zip(actors, batches)] if logged and not together else None  # else batch.pi_old
    update_start = time.monotonic()
    metrics = group.algo.update(batch, progress=steps / cfg.total_steps)  # the box, every seed
    update_s = time.monotonic() - update_start
    diagnostics = seeds_update_diagnostics(actors, batch.pi_old, batch, cfg.algo.name) if logged and together else None
    for row, i in enumerate(members):
        seed = seeds[i]
        with seed.own_generators(), _stops_alone(seed, "its update"):
            seed.update_time += update_s / len(members)  # each seed's share of the group's update
            episodes, seed.episodes = seed.episodes, None
            seed_diagnostics = ({} if not logged else diagnostics[row] if together
                                else update_diagnostics(seed.run.actor, pi_old[row], batches[row], cfg.algo.name))
            after_update(seed.cfg, seed.run, seed.tb, quiet, seed.checkpoints, stop, seed.wall, _row(metrics, row),
                         logged, seed_diagnostics, episodes, update_s / len(members))
    if any(sweep_stopping(seeds[i].run_dir) for i in members) and not stop:  # the sweep's driver stopped
        stop.ask(signal.SIGINT, "the sweep was stopped")


def _final_evaluation(seed: SeedRun, stop: StopRequest) -> None:
    """The trainer's final evaluation and status, for one seed (a failure in it stops that seed alone)."""
    with seed.own_generators(), _stops_alone(seed, "its final evaluation"):
        seed.status = final_evaluation(seed.cfg, seed.run, seed.tb, seed.checkpoints, stop)


@contextlib.contextmanager
def _stops_alone(seed: SeedRun, during: str) -> Iterator[None]:
    """A NaN or an env's error stops this seed alone (``failed``; its last good checkpoint kept)."""
    try:
        yield
    except (NumericalError, OutputError) as err:
        seed.status, seed.error = "failed", f"{seed.cfg.algo.name}: {err}" if isinstance(err, NumericalError) else str(err)
        log.error("seed %d stopped (%s): %s", seed.cfg.seed, during, seed.error)
    except Exception as exc:  # noqa: BLE001 - an env's own error: this seed's, not the group's
        seed.status = "crashed"
        seed.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log_to_files(f"crashed at step {seed.run.steps} (iteration {seed.run.iteration}) {during}:\n"
                     f"{traceback.format_exc()}")
        log.error("seed %d crashed (%s): %s (traceback in %s)", seed.cfg.seed, during, seed.error,
                  seed.run_dir / "rlrun.log")


def _finish(seed: SeedRun, overridden: Sequence[str]) -> dict:
    """Save (a completed or interrupted seed), write summary.json, close; the seed's summary."""
    with seed.own_generators():
        if seed.status in ("completed", "interrupted"):
            try:
                seed.checkpoints.save("last.pt")
            except OutputError as err:
                seed.status, seed.error = "failed", str(err)
        update_s = seed.update_time / max(seed.run.iteration - seed.first_iteration, 1)
        summary = run_summary(seed.cfg, seed.run, seed.status, seed.wall(), update_s, seed.error)
        try:
            write_summary(seed.run_dir, summary)
        except OutputError as err:
            log.error("%s", err)
        close_run(seed.cfg, seed.run, seed.tb, overridden)
        if seed.status == "completed":
            log_done(seed.cfg, summary)
    seed.log_file.close()
    return summary


def _row(metrics: dict[str, float | list[float]], row: int) -> dict[str, float]:
    """One seed's metrics from the group's (a list: one value per seed; a float: the same for all)."""
    return {key: value[row] if isinstance(value, list) else value for key, value in metrics.items()}
