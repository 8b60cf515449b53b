"""Running observation and reward normalisation (as SB3's VecNormalize), with checkpointable state."""

from __future__ import annotations

import numpy as np


def clip(x: np.ndarray, bound: float) -> np.ndarray:
    """``np.clip(x, -bound, bound)`` in place (NaN stays NaN), without np.clip's Python wrapper."""
    return np.minimum(np.maximum(x, -bound, out=x), bound, out=x)


class RunningMeanStd:
    """Mean and variance of a stream of batches (Chan et al. parallel update), in float64."""

    def __init__(self, shape: tuple[int, ...] = ()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        n = batch.shape[0]
        if n == 1:  # the same values, bit for bit, without the batch's mean and (zero) variance
            delta = batch[0] - self.mean
            total = self.count + 1
            self.mean = self.mean + delta / total
            self.var = (self.var * self.count + delta**2 * self.count / total) / total
            self.count = total
            return
        # np.mean and np.var, written as their ufunc reductions (the same values, bit for bit): at a
        # few envs per step their Python wrappers cost more than the arithmetic.
        batch_mean = np.add.reduce(batch, axis=0) / n
        deviation = batch - batch_mean
        batch_var = np.add.reduce(deviation * deviation, axis=0) / n
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"].copy(), state["var"].copy(), float(state["count"])


class ObsNormalizer:
    """(obs - mean) / std, clipped; statistics updated from training rollouts only.

    ``columns``: only these columns of a batch [N, D] are normalised (a Dict's Box keys beside
    one-hots and images), the others pass unchanged; None: all of them."""

    def __init__(self, shape: tuple[int, ...], clip: float, eps: float = 1e-8, columns: np.ndarray | None = None):
        self.rms = RunningMeanStd(shape)
        self.clip, self.eps, self.columns = clip, eps, columns

    def __call__(self, obs: np.ndarray, update: bool = False) -> np.ndarray:
        if self.columns is not None:
            out = obs.copy()
            out[:, self.columns] = self._normalize(obs[:, self.columns], update)
            return out
        return self._normalize(obs, update)

    def _normalize(self, obs: np.ndarray, update: bool) -> np.ndarray:
        if update:
            self.rms.update(obs)
        normed = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return clip(normed, self.clip).astype(np.float32)


class RewardNormalizer:
    """Divide rewards by the running std of the per-env discounted return (no mean shift)."""

    def __init__(self, num_envs: int, gamma: float, clip: float, eps: float = 1e-8):
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs, np.float64)
        self.gamma, self.clip, self.eps = gamma, clip, eps

    def __call__(self, rewards: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + rewards
        self.rms.update(self.returns)
        self.returns[done] = 0.0
        return clip(rewards / np.sqrt(self.rms.var + self.eps), self.clip)

    def state_dict(self) -> dict:
        return {"rms": self.rms.state_dict(), "returns": self.returns.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.rms.load_state_dict(state["rms"])
        self.returns = state["returns"].copy()
