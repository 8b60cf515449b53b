"""Deterministic evaluation episodes: during training (``eval_every``) and for ``rlrun-eval``.

During training this is what Stable-Baselines3's ``EvalCallback`` and rl-baselines3-zoo do: every
``eval_every`` env steps the current actor plays ``eval_episodes`` full episodes on a separate env,
with the training observation normalisation frozen (read, never updated), and the best mean return
so far is remembered so the trainer can keep that policy as ``checkpoints/best.pt``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from rlrun.envs import flatten_obs
from rlrun.normalization import ObsNormalizer

EVAL_SEED_OFFSET = 10000  # evaluation seed = the run's seed + this: no evaluation episode repeats a training one


def select_action(actor: torch.nn.Module, obs: torch.Tensor, deterministic: bool, generator: torch.Generator) -> torch.Tensor:
    """The mode of pi(.|s) (argmax for Categorical, the mean for Gaussian), or a sample from it."""
    dist = actor(obs)
    if isinstance(dist, torch.distributions.Categorical):
        if deterministic:
            return dist.probs.argmax(-1)
        return torch.multinomial(dist.probs, 1, generator=generator).squeeze(-1)
    normal = dist.base_dist  # Independent(Normal(mean, std), 1)
    if deterministic:
        return normal.loc
    noise = torch.randn(normal.loc.shape, generator=generator, device=normal.loc.device)
    return normal.loc + normal.scale * noise


def evaluate(actor: torch.nn.Module, env: gym.Env, obs_normalizer: ObsNormalizer | None, episodes: int,
             deterministic: bool, seed: int, max_steps: int | None = None) -> list[tuple[float, int]]:
    """(return, length) of ``episodes`` full episodes of ``actor`` in ``env``.

    The env is seeded once with ``seed`` (later resets continue its RNG), and so is the sampling
    of stochastic actions: the same seed gives the same episodes. ``obs_normalizer`` is applied
    with ``update=False``: the statistics saved at training time stay as they are. Returns are the
    env's own rewards (no reward normalisation).
    """
    device = next(actor.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    box = isinstance(env.action_space, spaces.Box)
    start = 0 if box else int(env.action_space.start)  # Discrete(n, start=k): the policy's 0..n-1 are k..k+n-1
    results = []
    for i in range(episodes):
        raw_obs, _ = env.reset(seed=seed if i == 0 else None)
        ret, length, done = 0.0, 0, False
        while not done:
            obs = flatten_obs(np.asarray(raw_obs)[None], env.observation_space)
            if obs_normalizer is not None:
                obs = obs_normalizer(obs, update=False)
            with torch.inference_mode():
                action = select_action(actor, torch.as_tensor(obs, device=device), deterministic, generator)
            action = action[0].detach().cpu().numpy()
            if box:
                action = np.clip(action, env.action_space.low, env.action_space.high)
            else:
                action = int(action) + start
            raw_obs, reward, terminated, truncated, _ = env.step(action)
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

    def run(self, actor: torch.nn.Module, obs_normalizer: ObsNormalizer | None, steps: int) -> EvalResult:
        """Evaluate the actor now (at ``steps`` env steps) and schedule the next evaluation."""
        returns = [ret for ret, _ in evaluate(actor, self.env, obs_normalizer, self.episodes, True, self.seed)]
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
