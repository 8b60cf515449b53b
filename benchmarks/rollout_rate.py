"""The environment's own speed vs rlrun's rollout collection on the same vectorised envs.

    python benchmarks/rollout_rate.py --env CartPole-v1 --num-envs 8 --steps 100000

Raw: random actions through the same gymnasium SyncVectorEnv (SAME_STEP autoreset) that rlrun
uses, no network. rlrun: RolloutCollector.collect (policy and value forward, sampling, storage,
GAE), without the update. Both with one torch thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from omegaconf import OmegaConf

from rlrun.config import EnvConfig
from rlrun.envs import make_vec_env
from rlrun.networks import CategoricalActor, Critic, GaussianActor
from rlrun.observations import obs_dim
from rlrun.rollout import RolloutCollector


def raw_rate(env_cfg, steps: int) -> float:
    envs = make_vec_env(env_cfg)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(256)]
    n = steps // env_cfg.num_envs
    start = time.perf_counter()
    for i in range(n):
        envs.step(actions[i % 256])
    rate = n * env_cfg.num_envs / (time.perf_counter() - start)
    envs.close()
    return rate


def rollout_rate(env_cfg, steps: int, n_steps: int) -> float:
    from gymnasium import spaces

    envs = make_vec_env(env_cfg)
    space = envs.single_action_space
    n_obs = obs_dim(envs.single_observation_space)
    actor = (CategoricalActor(n_obs, int(space.n), [64, 64], "tanh", True) if isinstance(space, spaces.Discrete)
             else GaussianActor(n_obs, space.shape[0], [64, 64], "tanh", True, 0.0))
    collector = RolloutCollector(envs, actor, Critic(n_obs, [64, 64], "tanh", True), n_steps=n_steps, gamma=0.99,
                                 gae_lambda=0.95, seed=0, device=torch.device("cpu"))
    iters = max(1, steps // (n_steps * env_cfg.num_envs))
    collector.collect(0)  # warm-up
    start = time.perf_counter()
    for i in range(iters):
        collector.collect(i)
    rate = iters * n_steps * env_cfg.num_envs / (time.perf_counter() - start)
    envs.close()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=32)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)
    env_cfg = OmegaConf.structured(EnvConfig(id=args.env, num_envs=args.num_envs))
    raws, ours = [], []
    for _ in range(args.repeats):  # alternate, so background load hits both alike
        raws.append(raw_rate(env_cfg, args.steps))
        ours.append(rollout_rate(env_cfg, args.steps, args.n_steps))
    raw, our = float(np.median(raws)), float(np.median(ours))
    print(f"{args.env}, {args.num_envs} sync envs, n_steps {args.n_steps}, median of {args.repeats}")
    print(f"raw env (random actions): {raw:10.0f} steps/s")
    print(f"rlrun rollout collection: {our:10.0f} steps/s  ({100 * our / raw:.0f}% of raw)")


if __name__ == "__main__":
    main()
