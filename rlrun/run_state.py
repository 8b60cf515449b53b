"""Everything a run holds between iterations, built from its config and saved or restored as one.

A checkpoint is :meth:`RunState.state_dict`: the networks, the algorithm's own state (optimisers,
K-FAC factors, lambda), the normalisers, the rollout's envs and open episodes, the episode
tracker, the evaluator, the global RNGs and the counters. ``resume=`` loads it back into a
freshly built RunState and the run continues bit-exactly (sync envs, same machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gymnasium.vector import VectorEnv
from omegaconf import DictConfig, OmegaConf

from rlrun.acting import make_obs_normalizer
from rlrun.algos.registry import algorithms
from rlrun.envs import make_env, make_vec_env, reward_threshold
from rlrun.episodes import EpisodeTracker
from rlrun.evaluation import EVAL_SEED_OFFSET, PeriodicEvaluator
from rlrun.networks import make_networks
from rlrun.normalization import ObsNormalizer, RewardNormalizer
from rlrun.rollout import RolloutCollector
from rlrun.process_setup import rng_state, set_rng_state


@dataclass
class RunState:
    envs: VectorEnv
    actor: torch.nn.Module
    critic: torch.nn.Module
    algo: Any  # the registered algorithm's instance
    collector: RolloutCollector
    tracker: EpisodeTracker
    evaluator: PeriodicEvaluator | None
    obs_normalizer: ObsNormalizer | None
    reward_normalizer: RewardNormalizer | None
    steps: int = 0  # env steps done, summed over the envs
    iteration: int = 0
    wall_before: float = 0.0  # wall-clock seconds of earlier sessions (before a resume)

    @classmethod
    def build(cls, cfg: DictConfig, device: torch.device) -> RunState:
        """A new run's state from ``cfg`` (seed the global RNGs first: the networks draw from them)."""
        envs = make_vec_env(cfg.env)
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        obs_normalizer = make_obs_normalizer(obs_space, cfg.env.clip_obs) if cfg.env.normalize_obs else None
        reward_normalizer = (RewardNormalizer(cfg.env.num_envs, cfg.algo.gamma, cfg.env.clip_reward)
                             if cfg.env.normalize_reward else None)
        actor, critic = make_networks(cfg.algo, obs_space, action_space)
        actor, critic = actor.to(device), critic.to(device)
        algo_cfg = OmegaConf.to_object(cfg.algo)  # the typed dataclass: plain attribute access in the hot loop
        algo = algorithms()[cfg.algo.name].algorithm(algo_cfg, actor, critic, cfg.seed)
        collector = RolloutCollector(envs, actor, critic, n_steps=cfg.algo.n_steps, gamma=cfg.algo.gamma,
                                     gae_lambda=cfg.algo.gae_lambda, seed=cfg.seed, device=device,
                                     obs_normalizer=obs_normalizer, reward_normalizer=reward_normalizer,
                                     sign_rewards=cfg.env.sign_rewards, life_loss_terminal=cfg.env.life_loss_terminal,
                                     sde_sample_freq=cfg.algo.sde_sample_freq if actor.distribution == "gsde" else None)
        evaluator = (PeriodicEvaluator(make_env(cfg.env), cfg.eval_every, cfg.eval_episodes, cfg.seed + EVAL_SEED_OFFSET)
                     if cfg.eval_every > 0 else None)
        return cls(envs, actor, critic, algo, collector, EpisodeTracker(cfg.solved_window, reward_threshold(cfg.env)),
                   evaluator, obs_normalizer, reward_normalizer)

    def state_dict(self, config: dict, wall_s: float) -> dict:
        return {
            "config": config, "steps": self.steps, "iteration": self.iteration, "wall_s": wall_s,
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(), "algo": self.algo.state_dict(),
            "obs_normalizer": self.obs_normalizer.rms.state_dict() if self.obs_normalizer else None,
            "reward_normalizer": self.reward_normalizer.state_dict() if self.reward_normalizer else None,
            "collector": self.collector.state_dict(), "tracker": self.tracker.state_dict(), "rng": rng_state(),
            "evaluator": self.evaluator.state_dict() if self.evaluator is not None else None,
        }

    def load_state_dict(self, state: dict, seed: int) -> None:
        """Continue from ``state``; envs that cannot be restored are reset from ``seed`` + its steps."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.algo.load_state_dict(state["algo"])
        if self.obs_normalizer and state["obs_normalizer"] is not None:  # None: a Dict run from before Dicts were normalised
            self.obs_normalizer.rms.load_state_dict(state["obs_normalizer"])
        if self.reward_normalizer:
            self.reward_normalizer.load_state_dict(state["reward_normalizer"])
        self.collector.load_state_dict(state["collector"], seed=seed + state["steps"])
        self.tracker.load_state_dict(state["tracker"])
        if self.evaluator is not None and state.get("evaluator") is not None:
            self.evaluator.load_state_dict(state["evaluator"])
        set_rng_state(state["rng"])
        self.steps, self.iteration, self.wall_before = state["steps"], state["iteration"], state["wall_s"]
