"""The training loop: collect a rollout, let the algorithm update, log, checkpoint, summarise."""

from __future__ import annotations

import importlib
import json
import logging
import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from omegaconf import DictConfig, OmegaConf

from rlrun.checkpoint import save_checkpoint
from rlrun.envs import make_vec_env, obs_dim, reward_threshold
from rlrun.logger import ProgressReporter, TensorBoardLogger
from rlrun.networks import CategoricalActor, Critic, GaussianActor
from rlrun.normalization import ObsNormalizer, RewardNormalizer
from rlrun.rollout import Episode, RolloutCollector

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
        raise RuntimeError("device='cuda' was asked for but torch sees no CUDA device; use device=cpu or device=auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    start_time: float
    recent: deque = field(init=False)
    solved_step: int | None = None
    solved_wall_s: float | None = None

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.window)

    def add(self, episodes: list[Episode]) -> None:
        for ep in episodes:
            self.recent.append(ep.ret)
            if (self.solved_step is None and self.threshold is not None and len(self.recent) == self.window
                    and self.mean_return() >= self.threshold):
                self.solved_step, self.solved_wall_s = ep.step, time.monotonic() - self.start_time

    def mean_return(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")


def train(cfg: DictConfig, run_dir: Path) -> float:
    """Run ``cfg`` to ``total_steps``; writes events, checkpoints and summary.json into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    torch.distributions.Distribution.set_default_validate_args(False)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)

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

    steps_per_iter = cfg.algo.n_steps * cfg.env.num_envs
    threshold = reward_threshold(cfg.env)
    start = time.monotonic()
    tracker = EpisodeTracker(cfg.solved_window, threshold, start)
    tb = TensorBoardLogger(run_dir, cfg)
    progress = ProgressReporter(cfg.total_steps, cfg.progress, f"{cfg.algo.name} {cfg.env.id}")
    steps, iteration, next_checkpoint = 0, 0, cfg.checkpoint_every

    def checkpoint_state() -> dict[str, Any]:
        return {
            "config": OmegaConf.to_container(cfg, resolve=True),
            "steps": steps, "iteration": iteration,
            "actor": actor.state_dict(), "critic": critic.state_dict(), "algo": algo.state_dict(),
            "obs_normalizer": obs_normalizer.rms.state_dict() if obs_normalizer else None,
            "reward_normalizer": reward_normalizer.state_dict() if reward_normalizer else None,
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        }

    def summary() -> dict[str, Any]:
        wall = time.monotonic() - start
        return {
            "algo": cfg.algo.name, "env": cfg.env.id, "seed": cfg.seed,
            "total_steps": cfg.total_steps, "steps_done": steps, "iterations": iteration,
            "wall_s": round(wall, 3), "fps": round(steps / wall, 1) if wall > 0 else 0.0,
            "final_return": None if not tracker.recent else tracker.mean_return(),
            "threshold": threshold, "solved_step": tracker.solved_step,
            "solved_wall_s": None if tracker.solved_wall_s is None else round(tracker.solved_wall_s, 3),
        }

    log.info("%s on %s, seed %d, %d steps -> %s", cfg.algo.name, cfg.env.id, cfg.seed, cfg.total_steps, run_dir)
    try:
        while steps < cfg.total_steps:
            batch, episodes = collector.collect(steps)
            rollout_end = time.monotonic()
            metrics = algo.update(batch, progress=steps / cfg.total_steps)
            update_s = time.monotonic() - rollout_end
            steps += steps_per_iter
            iteration += 1
            tracker.add(episodes)
            fps = steps / (time.monotonic() - start)
            if episodes:
                tb.scalars({"rollout/ep_return": float(np.mean([e.ret for e in episodes])),
                            "rollout/ep_length": float(np.mean([e.length for e in episodes]))}, steps)
            if iteration % cfg.log_every == 0:
                tb.scalars({**metrics, "time/fps": fps, "time/update_s": update_s}, steps)
            progress.update(steps, fps, tracker.mean_return())
            if cfg.checkpoint_every and steps >= next_checkpoint:
                save_checkpoint(run_dir / "checkpoints" / f"step_{steps}.pt", checkpoint_state())
                next_checkpoint += cfg.checkpoint_every
    finally:
        progress.close()
        save_checkpoint(run_dir / "checkpoints" / "last.pt", checkpoint_state())
        result = summary()
        (run_dir / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
        tb.close()
        envs.close()
    log.info("done: %d steps in %.1fs (%.0f steps/s), final return %s, solved at %s",
             steps, result["wall_s"], result["fps"], result["final_return"], result["solved_step"])
    return result["final_return"] if result["final_return"] is not None else float("nan")
