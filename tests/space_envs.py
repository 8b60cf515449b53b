"""Small envs for the observation and action spaces beyond Box and Discrete, importable by module
path (``env=tests.space_envs:DictMatch-v0``). In each, every step shows targets and pays for
matching them; an episode is 10 steps; the targets are drawn anew each step.

- ``DictMatch-v0``: Dict observation {"noise": Box(2), "target": Discrete(3)}, Discrete(3) actions,
  reward 1 when the action is the target: a random policy scores 3.33 an episode, the best 10.
- ``MultiDiscreteMatch-v0``: Box(6) observation (two one-hot targets of 3), MultiDiscrete([3, 3])
  actions, reward 1 per matched target: random 6.67, best 20.
- ``MultiBinaryMatch-v0``: Box(4) observation (4 target bits), MultiBinary(4) actions, reward
  0.25 per matched bit: random 5, best 10.
- ``ImageMatch-v0``: a 12x12x3 uint8 image (HxWxC) whose lit channel is the target, Discrete(3)
  actions, reward 1 when the action is the target: random 3.33, best 10.
- ``TupleImageMatch-v0``: Tuple(12x12x3 uint8 image, Dict {"target": Discrete(3), "noise":
  Box(2)}): two targets, one shown as the image's lit channel, one as a Discrete inside the
  nested Dict; MultiDiscrete([3, 3]) actions, reward 1 per matched target: random 6.67, best 20.
  The image needs a CNN inside the composite encoder.
- ``TextObs-v0``: a Text observation, which rlrun refuses.
"""

import gymnasium as gym
import numpy as np
from gymnasium import spaces

EPISODE = 10


class MatchEnv(gym.Env):
    """Targets drawn each step from ``self.np_random``; subclasses say how they look and pay."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.draw()
        return self.observation(), {}

    def step(self, action):
        reward = self.reward(action)
        self.t += 1
        self.draw()
        return self.observation(), reward, False, self.t >= EPISODE, {}


class DictMatch(MatchEnv):
    observation_space = spaces.Dict({"noise": spaces.Box(-1.0, 1.0, (2,), np.float32), "target": spaces.Discrete(3)})
    action_space = spaces.Discrete(3)

    def draw(self):
        self.target = int(self.np_random.integers(3))

    def observation(self):
        return {"noise": self.np_random.uniform(-1, 1, 2).astype(np.float32), "target": self.target}

    def reward(self, action):
        return float(int(action) == self.target)


class MultiDiscreteMatch(MatchEnv):
    observation_space = spaces.Box(0.0, 1.0, (6,), np.float32)
    action_space = spaces.MultiDiscrete([3, 3])

    def draw(self):
        self.targets = self.np_random.integers(3, size=2)

    def observation(self):
        return np.concatenate([np.eye(3, dtype=np.float32)[t] for t in self.targets])

    def reward(self, action):
        return float((np.asarray(action) == self.targets).sum())


class MultiBinaryMatch(MatchEnv):
    observation_space = spaces.Box(0.0, 1.0, (4,), np.float32)
    action_space = spaces.MultiBinary(4)

    def draw(self):
        self.bits = self.np_random.integers(2, size=4)

    def observation(self):
        return self.bits.astype(np.float32)

    def reward(self, action):
        return 0.25 * float((np.asarray(action) == self.bits).sum())


class ImageMatch(MatchEnv):
    observation_space = spaces.Box(0, 255, (12, 12, 3), np.uint8)
    action_space = spaces.Discrete(3)

    def draw(self):
        self.target = int(self.np_random.integers(3))

    def observation(self):
        frame = self.np_random.integers(0, 40, (12, 12, 3), dtype=np.uint8)  # dim noise
        frame[3:9, 3:9, self.target] = 255
        return frame

    def reward(self, action):
        return float(int(action) == self.target)


class TupleImageMatch(MatchEnv):
    observation_space = spaces.Tuple((
        spaces.Box(0, 255, (12, 12, 3), np.uint8),
        spaces.Dict({"target": spaces.Discrete(3), "noise": spaces.Box(-1.0, 1.0, (2,), np.float32)}),
    ))
    action_space = spaces.MultiDiscrete([3, 3])

    def draw(self):
        self.targets = self.np_random.integers(3, size=2)

    def observation(self):
        frame = self.np_random.integers(0, 40, (12, 12, 3), dtype=np.uint8)
        frame[3:9, 3:9, self.targets[0]] = 255
        noise = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return frame, {"target": int(self.targets[1]), "noise": noise}

    def reward(self, action):
        return float((np.asarray(action) == self.targets).sum())


class TextObs(MatchEnv):
    observation_space = spaces.Text(8)
    action_space = spaces.Discrete(2)

    def draw(self):
        pass

    def observation(self):
        return "text"

    def reward(self, action):
        return 0.0


class LivesEnv(gym.Env):
    """Atari-like bookkeeping: 3 lives, one lost every 4 steps, reward 5 a step; the game ends
    when the last life goes (step 12)."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {"lives": 3}

    def step(self, action):
        self.t += 1
        lives = 3 - self.t // 4
        return np.zeros(2, np.float32), 5.0, lives == 0, False, {"lives": lives}


for _name in ("DictMatch", "MultiDiscreteMatch", "MultiBinaryMatch", "ImageMatch", "TupleImageMatch", "TextObs", "LivesEnv"):
    if f"{_name}-v0" not in gym.registry:
        gym.register(f"{_name}-v0", entry_point=globals()[_name])
