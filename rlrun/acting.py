"""The one path from an env's observations to the env's actions, shared by the rollout, the
evaluation and :func:`rlrun.load`: observations flattened (Discrete one-hot) and normalised with
the run's statistics, the actor's ``act`` (a sample, or the mode), and actions made into what the
env takes (Box actions clipped to the bounds, ``Discrete(n, start)`` shifted by ``start``).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from rlrun.normalization import ObsNormalizer


def obs_dim(space: spaces.Space) -> int:
    """Length of the flat float vector the networks see (one-hot for Discrete)."""
    return int(space.n) if isinstance(space, spaces.Discrete) else int(np.prod(space.shape))


def flatten_obs(obs: np.ndarray, space: spaces.Space) -> np.ndarray:
    """A batch of observations as float32 [N, obs_dim]: Box flattened, Discrete one-hot."""
    if isinstance(space, spaces.Discrete):
        return np.eye(space.n, dtype=np.float32)[np.asarray(obs, dtype=np.int64) - space.start]
    return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)


class ObservationEncoder:
    """Raw env observations -> the float tensor [N, obs_dim] the networks see."""

    def __init__(self, space: spaces.Space, normalizer: ObsNormalizer | None, device: torch.device):
        self.space, self.normalizer, self.device = space, normalizer, device

    def __call__(self, raw_obs: np.ndarray, update: bool = False) -> Tensor:
        """``update``: the normaliser's running statistics take these observations in (training only)."""
        obs = flatten_obs(raw_obs, self.space)
        if self.normalizer is not None:
            obs = self.normalizer(obs, update=update)
        return torch.from_numpy(obs).to(self.device)


class ActionDecoder:
    """The actor's actions [N, ...] -> the numpy batch the (vectorised) env takes."""

    def __init__(self, space: spaces.Space, device: torch.device):
        self.discrete = isinstance(space, spaces.Discrete)
        # Discrete(n, start=k): the policy's actions 0..n-1 are sent to the env as k..k+n-1
        self.start = int(space.start) if self.discrete else 0
        # Box bounds as tensors: actions are clipped on the torch side, before the one numpy conversion.
        self.low = None if self.discrete else torch.as_tensor(space.low, device=device)
        self.high = None if self.discrete else torch.as_tensor(space.high, device=device)

    def __call__(self, action: Tensor) -> np.ndarray:
        if not self.discrete:
            action = torch.clamp(action, self.low, self.high)
        elif self.start:
            action = action + self.start
        return action.cpu().numpy()
