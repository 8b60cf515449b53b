"""The training loop: collect a rollout, let the algorithm update, log, checkpoint, summarise.

Nothing a user ran is lost: ``checkpoints/last.pt`` is refreshed every ``checkpoint_every``
steps and at the end; Ctrl-C / SIGTERM finish the iteration, save and exit 130 / 143; a
non-finite value stops the run with a one-line error and keeps the last good checkpoint;
``resume=<run dir>`` continues a run bit-exactly (sync envs, same machine).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import random
import resource
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from gymnasium import spaces
from omegaconf import DictConfig, OmegaConf

from rlrun.checkpoint import (OutputError, load_checkpoint, lock_run_dir, resume_command, save_checkpoint,
                              write_atomically)
from rlrun.config import ConfigError, check_resume_agrees
from rlrun.errors import NumericalError
from rlrun.envs import make_env, make_vec_env, obs_dim, reward_threshold
from rlrun.evaluation import EVAL_SEED_OFFSET, PeriodicEvaluator
from rlrun.logger import ProgressReporter, TensorBoardLogger
from rlrun.networks import CategoricalActor, Critic, GaussianActor
from rlrun.normalization import ObsNormalizer, RewardNormalizer
from rlrun.rollout import Episode, RolloutCollector
from rlrun.signals import Interrupted, stop_on_signals

log = logging.getLogger("rlrun")

ALGORITHMS = {  # config name -> "module:class", imported only when used
    "ppo_clip": "rlrun.algos.ppo_clip:PPOClip",
    "trpo": "rlrun.algos.trpo:TRPO",
    "ppo_penalty": "rlrun.algos.ppo_penalty:PPOPenalty",
    "acktr": "rlrun.algos.acktr:ACKTR",
}


def algorithm_class(name: str) -> type:
    module, cls = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is not allowed here: torch sees no CUDA device; use device=cpu or device=auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_networks(cfg: DictConfig, observation_space: spaces.Space, action_space: spaces.Space) -> tuple[torch.nn.Module, torch.nn.Module]:
    a, n_obs = cfg.algo, obs_dim(observation_space)
    if isinstance(action_space, spaces.Discrete):
        actor = CategoricalActor(n_obs, int(action_space.n), a.hidden_sizes, a.activation, a.ortho_init)
    else:
        actor = GaussianActor(n_obs, action_space.shape[0], a.hidden_sizes, a.activation, a.ortho_init, a.log_std_init)
    critic = Critic(n_obs, a.hidden_sizes, a.activation, a.ortho_init)
    return actor, critic


@dataclass
class EpisodeTracker:
    """The last ``window`` training episodes, and when their mean first reached the threshold."""

    window: int
    threshold: float | None
    recent: deque = field(init=False)
    solved_step: int | None = None
    solved_wall_s: float | None = None

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.window)

    def add(self, episodes: list[Episode], wall_s: float) -> None:
        for ep in episodes:
            self.recent.append(ep.ret)
            if (self.solved_step is None and self.threshold is not None and len(self.recent) == self.window
                    and self.mean_return() >= self.threshold):
                self.solved_step, self.solved_wall_s = ep.step, wall_s

    def mean_return(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")

    def state_dict(self) -> dict:
        return {"recent": list(self.recent), "solved_step": self.solved_step, "solved_wall_s": self.solved_wall_s}

    def load_state_dict(self, state: dict) -> None:
        self.recent.extend(state["recent"])
        self.solved_step, self.solved_wall_s = state["solved_step"], state["solved_wall_s"]


def check_finite(metrics: dict[str, float], modules: list[torch.nn.Module], iteration: int, algo: str) -> None:
    """Stop where a non-finite value first shows: the update's metrics, then the parameters."""
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise NumericalError(f"{algo}: non-finite {key}={value} at iteration {iteration}")
    for module in modules:
        for name, param in module.named_parameters():
            if not torch.isfinite(param).all():
                raise NumericalError(f"{algo}: non-finite parameter {type(module).__name__}.{name} after iteration {iteration}")


def objective_value(summary: dict[str, Any], key: str) -> float:
    """The summary value a sweeper optimises. A run that never solved the env scores, for
    ``solved_step`` / ``solved_wall_s``, the steps / seconds it ran: the least it would have
    needed, worse than any trial that solved it (a NaN would fail the trial). NaN only where there
    is no value at all (no episode finished), which fails that trial alone."""
    censored = {"solved_step": "steps_done", "solved_wall_s": "wall_s"}
    value = summary.get(key)
    if value is None and key in censored:
        value = summary.get(censored[key])
    return float("nan") if value is None else float(value)


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


def train(cfg: DictConfig, run_dir: Path, multirun: bool = False, overridden: Sequence[str] = ()) -> float:
    """Run ``cfg`` to ``total_steps``; writes events, checkpoints and summary.json into ``run_dir``,
    which no other rlrun process may use meanwhile.
    ``overridden``: the config keys set on the command line, which the HParams entry shows."""
    with lock_run_dir(run_dir):
        return _train(cfg, run_dir, multirun, overridden)


def _train(cfg: DictConfig, run_dir: Path, multirun: bool, overridden: Sequence[str]) -> float:
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.distributions.Distribution.set_default_validate_args(False)
    device = resolve_device(cfg.device)
    checkpoint = None
    if cfg.resume:
        checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        check_resume_agrees(checkpoint["config"], cfg, cfg.resume)
    seed_everything(cfg.seed)

    envs = make_vec_env(cfg.env)
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    obs_normalizer = (ObsNormalizer((obs_dim(obs_space),), cfg.env.clip_obs)
                      if cfg.env.normalize_obs and isinstance(obs_space, spaces.Box) else None)
    reward_normalizer = (RewardNormalizer(cfg.env.num_envs, cfg.algo.gamma, cfg.env.clip_reward)
                         if cfg.env.normalize_reward else None)
    actor, critic = make_networks(cfg, obs_space, action_space)
    actor, critic = actor.to(device), critic.to(device)
    algo_cfg = OmegaConf.to_object(cfg.algo)  # a typed dataclass: plain attribute access in the hot loop
    algo = algorithm_class(cfg.algo.name)(algo_cfg, actor, critic, cfg.seed)
    collector = RolloutCollector(envs, actor, critic, n_steps=cfg.algo.n_steps, gamma=cfg.algo.gamma,
                                 gae_lambda=cfg.algo.gae_lambda, seed=cfg.seed, device=device,
                                 obs_normalizer=obs_normalizer, reward_normalizer=reward_normalizer)
    threshold = reward_threshold(cfg.env)
    tracker = EpisodeTracker(cfg.solved_window, threshold)
    evaluator = (PeriodicEvaluator(make_env(cfg.env), cfg.eval_every, cfg.eval_episodes, cfg.seed + EVAL_SEED_OFFSET)
                 if cfg.eval_every > 0 else None)
    steps, iteration, wall_before = 0, 0, 0.0
    update_time = 0.0  # seconds in algo.update() this session (the rollout excluded)

    if checkpoint is not None:
        actor.load_state_dict(checkpoint["actor"])
        critic.load_state_dict(checkpoint["critic"])
        algo.load_state_dict(checkpoint["algo"])
        if obs_normalizer:
            obs_normalizer.rms.load_state_dict(checkpoint["obs_normalizer"])
        if reward_normalizer:
            reward_normalizer.load_state_dict(checkpoint["reward_normalizer"])
        collector.load_state_dict(checkpoint["collector"], seed=cfg.seed + checkpoint["steps"])
        tracker.load_state_dict(checkpoint["tracker"])
        if evaluator is not None and checkpoint.get("evaluator") is not None:
            evaluator.load_state_dict(checkpoint["evaluator"])
        set_rng_state(checkpoint["rng"])
        steps, iteration, wall_before = checkpoint["steps"], checkpoint["iteration"], checkpoint["wall_s"]
        log.info("resuming %s from step %d", run_dir, steps)

    steps_per_iter = cfg.algo.n_steps * cfg.env.num_envs
    first_iteration = iteration
    start = time.monotonic()

    def wall() -> float:
        return wall_before + time.monotonic() - start

    def save(path: Path) -> None:
        # Events up to the checkpoint's step go to disk first: a resumed run starts after that step
        # and would not write them again (a SIGKILL loses the writer's unflushed queue).
        tb.flush()
        save_checkpoint(path, {
            "config": OmegaConf.to_container(cfg, resolve=True), "steps": steps, "iteration": iteration,
            "wall_s": wall(), "actor": actor.state_dict(), "critic": critic.state_dict(), "algo": algo.state_dict(),
            "obs_normalizer": obs_normalizer.rms.state_dict() if obs_normalizer else None,
            "reward_normalizer": reward_normalizer.state_dict() if reward_normalizer else None,
            "collector": collector.state_dict(), "tracker": tracker.state_dict(), "rng": rng_state(),
            "evaluator": evaluator.state_dict() if evaluator is not None else None,
        })

    def evaluate_now() -> None:
        result = evaluator.run(actor, obs_normalizer, steps)
        tb.scalars({"eval/mean_return": result.mean_return, "eval/std_return": result.std_return}, steps)
        log.info("eval at step %d: %.1f ± %.1f over %d episodes%s", steps, result.mean_return, result.std_return,
                 evaluator.episodes, " (new best)" if result.is_best else "")
        if result.is_best:
            save(run_dir / "checkpoints" / "best.pt")

    # Events past the checkpoint (written before a crash) are dropped, so no step appears twice.
    tb = TensorBoardLogger(run_dir, cfg, purge_step=steps + 1 if checkpoint is not None else None)
    progress_mode = "lines" if multirun and cfg.progress in ("auto", "bar") else cfg.progress  # no bars in workers
    progress = ProgressReporter(cfg.total_steps, progress_mode, f"{cfg.algo.name} {cfg.env.id}")
    next_checkpoint = (steps // cfg.checkpoint_every + 1) * cfg.checkpoint_every if cfg.checkpoint_every else None
    status, error, failure = "running", None, None
    log.info("%s on %s, seed %d, %d steps -> %s", cfg.algo.name, cfg.env.id, cfg.seed, cfg.total_steps, run_dir)
    with stop_on_signals() as stop:
        try:
            while steps < cfg.total_steps and not stop:
                try:
                    batch, episodes = collector.collect(steps)
                except NumericalError as err:
                    raise NumericalError(f"{cfg.algo.name}: {err} (iteration {iteration})") from None
                rollout_end = time.monotonic()
                metrics = algo.update(batch, progress=steps / cfg.total_steps)
                update_s = time.monotonic() - rollout_end
                update_time += update_s
                check_finite(metrics, [actor, critic], iteration, cfg.algo.name)
                steps += steps_per_iter
                iteration += 1
                tracker.add(episodes, wall())
                fps = steps / wall()
                if episodes:
                    tb.scalars({"rollout/ep_return": float(np.mean([e.ret for e in episodes])),
                                "rollout/ep_return_mean": tracker.mean_return(),
                                "rollout/ep_length": float(np.mean([e.length for e in episodes]))}, steps)
                if iteration % cfg.log_every == 0:
                    tb.scalars({**metrics, "time/fps": fps, "time/update_s": update_s}, steps)
                progress.update(steps, fps, tracker.mean_return())
                if evaluator is not None and evaluator.due(steps):
                    evaluate_now()
                if next_checkpoint is not None and steps >= next_checkpoint:
                    if cfg.keep_checkpoints:
                        save(run_dir / "checkpoints" / f"step_{steps}.pt")
                    save(run_dir / "checkpoints" / "last.pt")
                    next_checkpoint += cfg.checkpoint_every
            if evaluator is not None and steps >= cfg.total_steps and (evaluator.last is None or evaluator.last.step != steps):
                evaluate_now()  # the final policy is always evaluated
            status = "interrupted" if stop else "completed"
        except (NumericalError, OutputError) as err:  # the state is consistent: it stopped between steps
            status, error, failure = "failed", str(err), err
        except BaseException as exc:
            status = "crashed"  # state may be half-updated: keep the last good checkpoint
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log_to_files(f"crashed at step {steps} (iteration {iteration}):\n{traceback.format_exc()}")
            raise
        finally:
            progress.close()
            if status in ("completed", "interrupted"):
                try:
                    save(run_dir / "checkpoints" / "last.pt")
                except OutputError as err:
                    status, error, failure = "failed", str(err), err
            result = {
                "algo": cfg.algo.name, "env": cfg.env.id, "seed": cfg.seed, "status": status,
                "total_steps": cfg.total_steps, "steps_done": steps, "iterations": iteration,
                "wall_s": round(wall(), 3), "fps": round(steps / wall(), 1) if wall() > 0 else 0.0,
                "final_return": tracker.mean_return() if tracker.recent else None,
                "threshold": threshold, "solved_step": tracker.solved_step,
                "solved_wall_s": None if tracker.solved_wall_s is None else round(tracker.solved_wall_s, 3),
                "update_s_per_iter": round(update_time / max(iteration - first_iteration, 1), 5),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                **(evaluator.summary() if evaluator is not None else {}),
                "error": error,
            }
            try:
                write_atomically(run_dir / "summary.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"))
            except OutputError as err:  # a full disk: the outcome still reaches the console below
                log.error("%s", err)
            quietly(lambda: tb.hparams(cfg, overridden), "writing the HParams entry")
            quietly(tb.close, "closing the event file")
            quietly(envs.close, "closing the training envs")
            if evaluator is not None:
                quietly(evaluator.close, "closing the evaluation env")

    resume_hint = f"resume with: {resume_command(run_dir)}"
    if multirun:
        resume_hint += f" (the whole sweep: {resume_command(run_dir.parent, sweep=True)})"
    if failure is not None:
        if (run_dir / "checkpoints" / "last.pt").is_file():
            raise type(failure)(f"{error}; the last good checkpoint is kept, {resume_hint}")
        raise type(failure)(f"{error}; it came before the first checkpoint, so there is nothing to resume")
    if status == "interrupted":
        log.warning("stopped at step %d; checkpoint saved; %s", steps, resume_hint)
        stop.hand_over()
        raise Interrupted(stop.exit_code)
    final = "-" if result["final_return"] is None else f"{result['final_return']:.1f}"
    solved = "not solved" if result["solved_step"] is None else f"solved at step {result['solved_step']}"
    log.info("done: %d env steps (total_steps %d, whole iterations of %d) in %.1f s, %.0f steps/s; "
             "final return %s, %s", steps, cfg.total_steps, steps_per_iter, result["wall_s"], result["fps"],
             final, solved)
    return objective_value(result, cfg.objective)
