"""Deterministic evaluation episodes: during training (``eval_every``) and for ``rlrun-eval``.

During training this is what Stable-Baselines3's ``EvalCallback`` and rl-baselines3-zoo do: every
``eval_every`` env steps the current actor plays ``eval_episodes`` full episodes on a separate env,
with the training observation normalisation frozen (read, never updated), and the best mean return
so far is remembered so the trainer can keep that policy as ``checkpoints/best.pt``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from rlrun.normalization import ObsNormalizer
from rlrun.policy import Policy

EVAL_SEED_OFFSET = 10000  # evaluation seed = the run's seed + this: no evaluation episode repeats a training one
DEFAULT_MAX_STEPS = 10_000  # per evaluation episode, for envs without a time limit


class EvaluationStopped(Exception):
    """``stop()`` became true during an evaluation (a signal asked the run to stop)."""


def episode_cap(env: gym.Env) -> int | None:
    """None where the env has its own time limit, else DEFAULT_MAX_STEPS: every episode ends."""
    return DEFAULT_MAX_STEPS if env.spec is None or env.spec.max_episode_steps is None else None


def evaluate(policy: Policy, env: gym.Env, episodes: int, deterministic: bool, seed: int,
             max_steps: int | None = None, stop: Callable[[], bool] = lambda: False) -> list[tuple[float, int]]:
    """(return, length) of ``episodes`` full episodes of ``policy`` in ``env``, each ended after
    ``max_steps`` steps at the latest; raises EvaluationStopped as soon as ``stop()`` is true.

    The env is seeded once with ``seed`` (later resets continue its RNG), and so is the sampling
    of stochastic actions: the same seed gives the same episodes. The policy's observation
    normalisation is read, never updated. Returns are the env's own rewards (no reward normalisation).
    """
    generator = torch.Generator(device=next(policy.actor.parameters()).device).manual_seed(seed)
    results = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed if i == 0 else None)
        ret, length, done = 0.0, 0, False
        while not done:
            if stop():
                raise EvaluationStopped
            obs, reward, terminated, truncated, _ = env.step(policy.act(obs, deterministic, generator))
            ret, length = ret + float(reward), length + 1
            done = terminated or truncated or (max_steps is not None and length >= max_steps)
        results.append((ret, length))
    return results


@dataclass(frozen=True)
class EvalResult:
    step: int
    mean_return: float
    std_return: float
    is_best: bool  # a new best mean return: the trainer keeps this policy as checkpoints/best.pt


class PeriodicEvaluator:
    """Deterministic evaluation every ``every`` env steps on its own env (SB3 ``EvalCallback``).

    Every evaluation replays the same seed (``seed``), so successive evaluations differ only by the
    policy, and ``rlrun-eval`` on the final checkpoint (same default seed) reproduces the last one.
    The evaluation draws from no global RNG, so training is the same with or without it.

    Args:
        env: a single env made like the training ones (``envs.make_env``); owned and closed here.
        every: env steps between evaluations (``eval_every`` > 0).
        episodes: full episodes per evaluation (``eval_episodes``).
        seed: the evaluation env's seed.
    """

    def __init__(self, env: gym.Env, every: int, episodes: int, seed: int):
        self.env, self.every, self.episodes, self.seed = env, every, episodes, seed
        self.next_step = every  # first evaluation once this many env steps are done
        self.last: EvalResult | None = None
        self.best_return, self.best_step = -math.inf, None

    def due(self, steps: int) -> bool:
        return steps >= self.next_step

    def run(self, actor: torch.nn.Module, obs_normalizer: ObsNormalizer | None, steps: int,
            stop: Callable[[], bool] = lambda: False) -> EvalResult | None:
        """Evaluate the actor now (at ``steps`` env steps) and schedule the next evaluation; None,
        with nothing recorded, when ``stop()`` cut it short (it is due again after a resume).
        Episodes end at the env's time limit, or after DEFAULT_MAX_STEPS as in ``rlrun-eval``."""
        policy = Policy(actor, self.env.observation_space, self.env.action_space, obs_normalizer)
        try:
            results = evaluate(policy, self.env, self.episodes, True, self.seed, episode_cap(self.env), stop)
        except EvaluationStopped:
            return None
        returns = [ret for ret, _ in results]
        mean = float(np.mean(returns))
        is_best = mean > self.best_return
        if is_best:
            self.best_return, self.best_step = mean, steps
        self.last = EvalResult(step=steps, mean_return=mean, std_return=float(np.std(returns)), is_best=is_best)
        self.next_step = (steps // self.every + 1) * self.every
        return self.last

    def summary(self) -> dict[str, float | int | None]:
        """What summary.json reports: the last ("final") and the best evaluation."""
        last = self.last
        return {"eval_final_return": None if last is None else last.mean_return,
                "eval_final_std": None if last is None else last.std_return,
                "eval_final_step": None if last is None else last.step,
                "eval_best_return": None if self.best_step is None else self.best_return,
                "eval_best_step": self.best_step}

    def state_dict(self) -> dict:
        last = self.last
        return {"next_step": self.next_step, "best_return": self.best_return, "best_step": self.best_step,
                "last": None if last is None else (last.step, last.mean_return, last.std_return, last.is_best)}

    def load_state_dict(self, state: dict) -> None:
        self.next_step, self.best_return, self.best_step = state["next_step"], state["best_return"], state["best_step"]
        self.last = None if state["last"] is None else EvalResult(*state["last"])

    def close(self) -> None:
        self.env.close()
