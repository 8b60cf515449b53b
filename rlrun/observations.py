"""How an observation space is laid out for the networks, without torch: an image Box stays an
image (CxHxW); everything else becomes one flat float32 vector, a Dict's or Tuple's leaves (nested
too) each encoded (Box flattened, Discrete one-hot, MultiDiscrete one one-hot per dimension,
MultiBinary 0/1) and concatenated in the space's order. ``leaf_slices`` says where each leaf lies,
so a network can view an image leaf as CxHxW again.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


def is_image(space: spaces.Space) -> bool:
    """A rank-3 Box (HxWxC or CxHxW) of at least 3x3 pixels: the networks see it through a CNN."""
    return isinstance(space, spaces.Box) and len(space.shape) == 3 and sorted(space.shape)[1] >= 3


def channels_first(space: spaces.Box) -> bool:
    """CxHxW when the first axis is the smallest (SB3's rule: 4x84x84 frame stacks), else HxWxC (MinAtar's 10x10xC)."""
    return int(np.argmin(space.shape)) == 0 and space.shape[0] < space.shape[-1]


def image_shape(space: spaces.Box) -> tuple[int, int, int]:
    """(C, H, W) of an image space, whichever its layout."""
    return tuple(space.shape) if channels_first(space) else (space.shape[2], space.shape[0], space.shape[1])


def is_composite(space: spaces.Space) -> bool:
    return isinstance(space, (spaces.Dict, spaces.Tuple))


def leaves(space: spaces.Space) -> list[tuple[tuple, spaces.Space]]:
    """(path, space) of every non-composite space inside a Dict or Tuple (nested too), in the
    space's order (a Dict's key order, a Tuple's index order); ``[((), space)]`` otherwise."""
    if not is_composite(space):
        return [((), space)]
    items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
    return [((key, *path), leaf) for key, sub in items for path, leaf in leaves(sub)]


def pick(obs, path: tuple):
    """The part of a (batch of) composite observation(s) at ``path``: obs[k1][k2]..."""
    for key in path:
        obs = obs[key]
    return obs


def leaf_dim(space: spaces.Space) -> int:
    """Length of one leaf's encoding: one-hot for Discrete, one-hots for MultiDiscrete, else its size."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(space.nvec.sum())
    return int(np.prod(space.shape))


def obs_dim(space: spaces.Space) -> int:
    """Length of the flat vector of one observation (a Dict's or Tuple's leaves summed)."""
    return sum(leaf_dim(leaf) for _, leaf in leaves(space))


def obs_shape(space: spaces.Space) -> tuple[int, ...]:
    """What the networks see of one observation: (C, H, W) for an image, else (obs_dim,)."""
    return image_shape(space) if is_image(space) else (obs_dim(space),)


def leaf_slices(space: spaces.Space) -> list[tuple[slice, spaces.Space]]:
    """Where each leaf's encoding lies in the flat vector of :func:`flatten_obs`, in order."""
    out, start = [], 0
    for _, leaf in leaves(space):
        out.append((slice(start, start + leaf_dim(leaf)), leaf))
        start += leaf_dim(leaf)
    return out


def _one_hot(codes: np.ndarray, n: int) -> np.ndarray:
    """float32 [len(codes), n], a 1 at each code: the rows of np.eye(n) without building it (a
    Discrete(200000) identity would take 149 GiB)."""
    out = np.zeros((len(codes), int(n)), np.float32)
    out[np.arange(len(codes)), codes] = 1.0
    return out


def _flatten_leaf(obs, space: spaces.Space) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        return _one_hot(np.asarray(obs, dtype=np.int64).reshape(-1) - int(space.start), space.n)
    obs = np.asarray(obs)
    if isinstance(space, spaces.MultiDiscrete):
        codes = (obs - space.start).reshape(len(obs), -1).astype(np.int64)
        return np.concatenate([_one_hot(codes[:, i], n) for i, n in enumerate(space.nvec.reshape(-1))], axis=-1)
    if is_image(space) and not channels_first(space):  # HxWxC -> CxHxW, so the network can view it as an image
        obs = obs.transpose(0, 3, 1, 2)
    return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)


def flatten_obs(obs, space: spaces.Space) -> np.ndarray:
    """A batch of observations as float32 [N, obs_dim]: Box flattened (an image inside a Dict or
    Tuple as CxHxW, raw pixel values), Discrete one-hot, MultiDiscrete one one-hot per dimension,
    MultiBinary as 0/1; a Dict or Tuple (a dict or tuple of batches) its leaves concatenated."""
    if not is_composite(space):
        return _flatten_leaf(obs, space)
    return np.concatenate([_flatten_leaf(pick(obs, path), leaf) for path, leaf in leaves(space)], axis=-1)


def _rebuild(space: spaces.Space, leaf_value, path: tuple = ()):
    """The space's Dict/Tuple structure with ``leaf_value(path)`` at each leaf."""
    if isinstance(space, spaces.Dict):
        return {key: _rebuild(sub, leaf_value, (*path, key)) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_rebuild(sub, leaf_value, (*path, i)) for i, sub in enumerate(space.spaces))
    return leaf_value(path)


def batch_of_one(obs, space: spaces.Space):
    """One observation as a batch of one (a Dict's or Tuple's leaves each)."""
    return _rebuild(space, lambda path: np.asarray(pick(obs, path))[None])


def stack_obs(observations: list, space: spaces.Space):
    """Single observations (a vector env's ``final_obs`` entries) as one batch."""
    return _rebuild(space, lambda path: np.stack([pick(o, path) for o in observations]))


def normalized_columns(space: spaces.Space) -> np.ndarray | None:
    """Columns of the flat vector that ``env.normalize_obs`` normalises: the non-image Box leaves
    (SB3's VecNormalize normalises Box observations and a Dict's Box keys); one-hots, bits and
    images (the CNN scales those) are left alone. None: nothing to normalise."""
    columns = [np.arange(sl.start, sl.stop) for sl, leaf in leaf_slices(space)
               if isinstance(leaf, spaces.Box) and not is_image(leaf)]
    return np.concatenate(columns) if columns else None


FLOAT32_MAX = float(np.finfo(np.float32).max)


def within_float32(values) -> bool:
    """No NaN, no inf and nothing beyond float32's range (what the networks learn from) anywhere in
    a batch (a Dict's or Tuple's leaves each): one reduction a leaf, NaN failing the comparison.
    Integer leaves (one-hot codes, uint8 frames) always are."""
    if isinstance(values, dict):
        return all(within_float32(value) for value in values.values())
    if isinstance(values, tuple):
        return all(within_float32(value) for value in values)
    values = np.asarray(values)
    return values.dtype.kind != "f" or values.size == 0 or bool(np.abs(values).max() <= FLOAT32_MAX)  # NaN: False


def check_encoder(algo_cfg, space: spaces.Space) -> None:
    """Raise ValueError (one line) if ``algo.encoder`` or ``algo.share_encoder`` asks for a CNN
    that ``space`` has no image for."""
    kind = getattr(algo_cfg, "encoder", None) or "auto"
    if any(is_image(leaf) for _, leaf in leaves(space)):
        return
    if kind not in ("auto", "mlp"):
        raise ValueError(f"algo.encoder={kind} needs image observations (a rank-3 Box, alone or in a Dict or Tuple), "
                         f"not {space}")
    if getattr(algo_cfg, "share_encoder", False):
        raise ValueError(f"algo.share_encoder=true needs image observations (a CNN to share), not {space}")
