"""The one path from an env's observations to the env's actions, shared by the rollout, the
evaluation and :func:`rlrun.load`: observations flattened (Discrete one-hot, a Dict's or Tuple's
leaves each encoded so and concatenated; an image alone stays an image) and normalised with the
run's statistics, the actor's ``act`` (a sample, or the mode), and actions made into what the env
takes (Box actions clipped to the bounds, ``Discrete(n, start)`` and ``MultiDiscrete(nvec, start)``
shifted by ``start``, MultiBinary bits as int8 in the space's shape).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from rlrun.normalization import ObsNormalizer
from rlrun.observations import channels_first, flatten_obs, is_image, normalized_columns, obs_dim


def obs_dtype(space: spaces.Space) -> np.dtype:
    """Images stay uint8 (or bool as uint8) until the network scales them; the rest is float32."""
    return np.dtype(np.uint8 if is_image(space) and space.dtype in (np.uint8, np.bool_) else np.float32)


def make_obs_normalizer(space: spaces.Space, clip: float) -> ObsNormalizer | None:
    """The running observation normaliser of :func:`normalized_columns` (none for an image, a
    Discrete or a MultiBinary space: nothing to normalise)."""
    columns = normalized_columns(space)
    if columns is None:
        return None
    return ObsNormalizer((len(columns),), clip, columns=None if len(columns) == obs_dim(space) else columns)


def action_buffer(space: spaces.Space) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of one action as the rollout stores it and the algorithms see it (as the
    torch tensor of the same dtype)."""
    if isinstance(space, spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, spaces.MultiDiscrete):
        return (int(np.prod(space.shape)),), np.dtype(np.int64)
    if isinstance(space, spaces.MultiBinary):
        return (int(np.prod(space.shape)),), np.dtype(np.float32)  # Bernoulli log-probs take float bits
    return tuple(space.shape), np.dtype(np.float32)


class ObservationEncoder:
    """Raw env observations -> the array [N, *obs_shape] the networks see (as a tensor): float32
    vectors, or images as CxHxW in their own dtype (uint8 frames stay uint8: one byte a pixel)."""

    def __init__(self, space: spaces.Space, normalizer: ObsNormalizer | None, device: torch.device):
        self.space, self.normalizer, self.device = space, normalizer, device
        self.image, self.transpose = is_image(space), is_image(space) and not channels_first(space)

    def __call__(self, raw_obs: np.ndarray, update: bool = False) -> np.ndarray:
        """``update``: the normaliser's running statistics take these observations in (training only)."""
        if self.image:
            frames = np.asarray(raw_obs).view(np.uint8) if raw_obs.dtype == np.bool_ else raw_obs
            return frames.transpose(0, 3, 1, 2) if self.transpose else frames
        obs = flatten_obs(raw_obs, self.space)
        if self.normalizer is not None:
            obs = self.normalizer(obs, update=update)
        return obs

    def tensor(self, raw_obs: np.ndarray) -> Tensor:
        """The encoded observations as a tensor on the networks' device (the statistics unchanged)."""
        return torch.from_numpy(self(raw_obs)).to(self.device)


class NumpyActor:
    """The actor's ``act`` for a rollout on the CPU, in numpy: the same maths as
    ``CategoricalActor.act`` (Gumbel-max), ``GaussianActor.act`` (mean + std * noise) and
    ``GSDEActor.act`` (mean + z(s) Theta, Theta drawn by the actor) for an actor whose network is a
    plain MLP. At a rollout's batch sizes (one observation an env) a torch forward spends several
    times its arithmetic on dispatch; these few matmuls do not.

    Made once per rollout: the parameters do not change while it runs, so their values are read
    then (as views of the tensors' memory, no copy). The noise comes from numpy's global
    generator, which the runtime seeds and every checkpoint saves, as it does torch's."""

    def __init__(self, actor: nn.Module):
        net = actor.net
        self.layers = [(linear.weight.detach().numpy().T, linear.bias.detach().numpy()) for linear in net.linears]
        self.activation = np.tanh if net.activation == "tanh" else (lambda h: np.maximum(h, 0.0))
        self.std = np.exp(actor.log_std.detach().numpy()) if actor.distribution == "gaussian" else None
        self.sde_actor = actor if actor.distribution == "gsde" else None  # redraws Theta during a rollout

    @staticmethod
    def applies(actor: nn.Module, device: torch.device) -> bool:
        """A categorical or Gaussian head (gSDE's too) on an MLP without an encoder, on the CPU; other actors
        (CNNs, composite encoders, the multi-categorical and Bernoulli heads, CUDA) keep torch's."""
        net = getattr(actor, "net", None)
        return (device.type == "cpu" and getattr(actor, "distribution", None) in ("categorical", "gaussian", "gsde")
                and net is not None and not net.has_encoder)

    def act(self, obs: np.ndarray) -> np.ndarray:
        h = obs
        for weight, bias in self.layers[:-1]:
            h = self.activation(h @ weight + bias)
        weight, bias = self.layers[-1]
        out = h @ weight + bias
        if self.sde_actor is not None:  # gSDE: z(s) Theta, each env's row with its own Theta
            return out + (h[:, None, :] @ self.sde_actor.exploration.numpy())[:, 0]
        if self.std is None:  # a sample of softmax(out): argmax of out + Gumbel noise
            return np.argmax(out - np.log(np.random.exponential(size=out.shape)), axis=-1)
        return out + self.std * np.random.standard_normal(out.shape).astype(np.float32)


class ActionDecoder:
    """The actor's actions [N, ...] (numpy) -> the batch the (vectorised) env takes."""

    def __init__(self, space: spaces.Space):
        self.space = space
        self.box = isinstance(space, spaces.Box)
        # MultiDiscrete / MultiBinary: numpy in the space's dtype (int8 bits) and shape
        self.multi_dtype = (np.int8 if isinstance(space, spaces.MultiBinary) else space.dtype) if isinstance(
            space, (spaces.MultiDiscrete, spaces.MultiBinary)) else None
        # Discrete(n, start=k) / MultiDiscrete(nvec, start): the policy's 0..n-1 are sent as k..k+n-1
        start = getattr(space, "start", None)
        self.start = None if start is None or not np.any(start) else np.asarray(start, np.int64).reshape(-1)
        self.low, self.high = (space.low, space.high) if self.box else (None, None)

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if self.box:  # clipped to the bounds (NaN stays NaN), in the bounds' dtype where it is wider
            return np.minimum(np.maximum(action, self.low), self.high)
        if self.start is not None:
            action = action + self.start
        if self.multi_dtype is not None:
            return action.astype(self.multi_dtype).reshape(len(action), *self.space.shape)
        return action
