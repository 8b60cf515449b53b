"""Test envs with a fault at a known env step, importable by module path:
``tests.faulty_envs:NanReward-v0`` (its 400th step returns a NaN reward) and
``tests.faulty_envs:Crash-v0`` (its 300th step raises RuntimeError("boom")) and
``tests.faulty_envs:NanObservation-v0`` / ``NanFinalObservation-v0`` (a NaN observation at
step 456, or as the final observation of the episode that step 400 truncates) and
``tests.faulty_envs:SlowStart-v0`` (each construction touches the file named by
$RLRUN_TEST_STARTING, then takes 3 s: a Ctrl-C that comes while a run is being set up) and
``tests.faulty_envs:Paced-v0`` (each step takes 1 ms: a run whose length in seconds does not depend
on how fast the machine is, for tests that must be cut by a time limit) and
``tests.faulty_envs:Endless-v0`` (reward 1 a step, no time limit: its episodes never end) and
``tests.faulty_envs:ResetFails-v0`` (reset() raises RuntimeError("reset failed"): a crash while a
run is set up) and ``tests.faulty_envs:NoneReward-v0`` (its 5th step returns a reward of None) and
``HugeReward-v0`` / ``HugeObservation-v0`` (a finite float64 value of 1e39 at the 5th step, beyond
float32's range)."""

import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class FaultAtStep(gym.Env):
    """Reward 1 on every step but the ``fault_step``-th of this process (across instances and resets)."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)
    fault_step = 0
    total_steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        type(self).total_steps += 1
        reward = self.fault() if type(self).total_steps == self.fault_step else 1.0
        return np.zeros(2, np.float32), reward, False, False, {}

    def fault(self) -> float:
        raise NotImplementedError


class NanReward(FaultAtStep):
    fault_step = 400

    def fault(self) -> float:
        return float("nan")


class Crash(FaultAtStep):
    fault_step = 300

    def fault(self) -> float:
        raise RuntimeError("boom")


class NanObservation(FaultAtStep):
    """Its 456th step returns a NaN observation (and reward 1), in the middle of an episode."""

    fault_step = 456

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if type(self).total_steps == self.fault_step:
            obs = np.full(2, np.nan, np.float32)
        return obs, reward, terminated, truncated, info

    def fault(self) -> float:
        return 1.0


class NanFinalObservation(NanObservation):
    """Its 400th step, the last of an episode (time limit 10), returns a NaN final observation."""

    fault_step = 400


class SlowStart(FaultAtStep):
    def __init__(self):
        marker = os.environ.get("RLRUN_TEST_STARTING")
        if marker:
            Path(marker).touch()
        time.sleep(3.0)

    def fault(self) -> float:
        return 1.0


class Paced(FaultAtStep):
    def step(self, action):
        time.sleep(0.001)
        return super().step(action)

    def fault(self) -> float:
        return 1.0


class Endless(FaultAtStep):
    def fault(self) -> float:
        return 1.0


class NoneReward(FaultAtStep):
    fault_step = 5

    def fault(self):
        return None


class HugeReward(FaultAtStep):
    fault_step = 5

    def fault(self) -> float:
        return 1e39


class HugeObservation(FaultAtStep):
    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2), {}

    def step(self, action):
        type(self).total_steps += 1
        return np.full(2, 1e39 if type(self).total_steps == 5 else 0.0), 1.0, False, False, {}


class ResetFails(FaultAtStep):
    def reset(self, *, seed=None, options=None):
        raise RuntimeError("reset failed")


for name, env in (("NanReward-v0", NanReward), ("Crash-v0", Crash), ("NanObservation-v0", NanObservation),
                  ("NanFinalObservation-v0", NanFinalObservation), ("SlowStart-v0", SlowStart),
                  ("Paced-v0", Paced), ("faulty/Crash-v0", Crash), ("ResetFails-v0", ResetFails),
                  ("NoneReward-v0", NoneReward), ("HugeReward-v0", HugeReward), ("HugeObservation-v0", HugeObservation)):  # an id in a namespace, as MinAtar/ and ALE/
    if name not in gym.registry:
        gym.register(name, entry_point=env, max_episode_steps=10)
if "Endless-v0" not in gym.registry:
    gym.register("Endless-v0", entry_point=Endless)  # no TimeLimit
