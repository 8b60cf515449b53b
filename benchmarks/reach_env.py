"""DictReach-v0: an env no tuned file has seen, for the generic defaults (``benchmarks/generic_defaults.py``).

A 7x7 grid; the agent starts in the centre and must reach the corner its goal names, within 50
steps. Observation: a Dict of ``position`` (Box(2), the cell scaled to [0, 1]), ``goal``
(Discrete(4), the corner) and ``walls`` (MultiBinary(4), the grid edges beside the agent: left,
right, down, up). Action: MultiDiscrete([3, 3], start=[-1, -1]), the move (dx, dy) in {-1, 0, 1}^2,
a move into an edge stays put. Reward: -0.01 a step, +1 on reaching the goal (terminated).
Best return 0.98 (three diagonal moves); a uniformly random policy scores about -0.14.

    rlrun env.id=reach_env:DictReach-v0 tuned=none      # with benchmarks/ on PYTHONPATH
"""

import gymnasium as gym
import numpy as np
from gymnasium import spaces

SIZE, MAX_STEPS = 7, 50
CORNERS = np.array([[0, 0], [SIZE - 1, 0], [0, SIZE - 1], [SIZE - 1, SIZE - 1]])


class DictReach(gym.Env):
    def __init__(self):
        self.observation_space = spaces.Dict({
            "position": spaces.Box(0.0, 1.0, (2,), np.float32),
            "goal": spaces.Discrete(4),
            "walls": spaces.MultiBinary(4),
        })
        self.action_space = spaces.MultiDiscrete([3, 3], start=[-1, -1])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cell = np.array([SIZE // 2, SIZE // 2])
        self.goal = int(self.np_random.integers(4))
        self.t = 0
        return self._observation(), {}

    def step(self, action):
        move = np.asarray(action, np.int64)
        if not self.action_space.contains(move):
            raise ValueError(f"action {action} is outside {self.action_space}")
        self.cell = np.clip(self.cell + move, 0, SIZE - 1)
        self.t += 1
        reached = bool((self.cell == CORNERS[self.goal]).all())
        return self._observation(), 1.0 if reached else -0.01, reached, self.t >= MAX_STEPS and not reached, {}

    def _observation(self):
        x, y = self.cell
        walls = np.array([x == 0, x == SIZE - 1, y == 0, y == SIZE - 1], np.int8)
        return {"position": (self.cell / (SIZE - 1)).astype(np.float32), "goal": self.goal, "walls": walls}


class StartShift(gym.ActionWrapper):
    """MultiDiscrete(nvec) actions 0..n-1, shifted by the env's ``start``: for libraries that
    ignore ``start`` (Stable-Baselines3 samples 0..n-1 and would never move left or down)."""

    def __init__(self, env):
        super().__init__(env)
        self.start = env.action_space.start
        self.action_space = spaces.MultiDiscrete(env.action_space.nvec)

    def action(self, action):
        return np.asarray(action) + self.start


gym.register("DictReach-v0", entry_point=DictReach)
