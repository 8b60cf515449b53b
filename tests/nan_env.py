"""A test env, importable as ``tests.nan_env:NanReward-v0``: reward 1, then NaN at its 30th step."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class NanReward(gym.Env):
    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)
    total_steps = 0  # across episodes and resets of this process's instances

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        NanReward.total_steps += 1
        reward = float("nan") if NanReward.total_steps == 400 else 1.0
        return np.zeros(2, np.float32), reward, False, False, {}


if "NanReward-v0" not in gym.registry:
    gym.register("NanReward-v0", entry_point=NanReward, max_episode_steps=10)
