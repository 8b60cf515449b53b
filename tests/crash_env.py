"""A test env, importable as ``tests.crash_env:Crash-v0``: its 300th step raises RuntimeError("boom")."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Crash(gym.Env):
    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)
    total_steps = 0  # across episodes and resets of this process's instances

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        Crash.total_steps += 1
        if Crash.total_steps == 300:
            raise RuntimeError("boom")
        return np.zeros(2, np.float32), 1.0, False, False, {}


if "Crash-v0" not in gym.registry:
    gym.register("Crash-v0", entry_point=Crash, max_episode_steps=10)
