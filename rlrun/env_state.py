"""An environment's state as plain data, so that a checkpoint holds no pickled objects.

:func:`env_state` walks the wrapper chain (``TimeLimit`` ... the unwrapped env) and keeps, for
each level, the attributes whose values are data: numbers, strings, None, numpy arrays and
scalars, tuples and lists of these, and numpy ``Generator`` states. That is the whole state of
the pure-Python envs (classic control, toy text: their physics as arrays, their RNG, the step
counters of the wrappers). Dicts with string keys count as data too. :func:`restore_env_state` writes those values back into a freshly
built env of the same classes, into the instances' ``__dict__`` (no setter or other code runs),
and only where the fresh env has the attribute with a value of the same kind. Objects that are
not data (spaces, renderers, simulators' C handles) are rebuilt by the env itself.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

_SCALARS = (bool, int, float, str, type(None), np.generic)


class _Skip(Exception):
    """A value that is not plain data."""


def _data(value: Any, top: bool = True) -> Any:
    if isinstance(value, _SCALARS) and (not isinstance(value, np.generic) or value.dtype.kind in "biuf"):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.copy()
    if top and isinstance(value, np.random.Generator):
        return {"numpy_generator": value.bit_generator.state}
    if isinstance(value, (tuple, list)):
        items = [_data(v, top=False) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _data(v, top=False) for k, v in value.items()}
    raise _Skip


def _levels(env: gym.Env) -> list[Any]:
    levels = [env]
    while isinstance(levels[-1], gym.Wrapper):
        levels.append(levels[-1].env)
    return levels


def env_state(env: gym.Env) -> list[dict]:
    """Per level of the wrapper chain, outermost first: its class name and its data attributes."""
    state = []
    for level in _levels(env):
        attributes = {}
        for name, value in vars(level).items():
            try:
                attributes[name] = _data(value)
            except _Skip:
                pass
        state.append({"class": type(level).__qualname__, "attributes": attributes})
    return state


def _same_kind(current: Any, saved: Any) -> bool:
    if isinstance(current, np.random.Generator):
        return isinstance(saved, dict) and saved.get("numpy_generator", {}).get("bit_generator") == \
            current.bit_generator.state["bit_generator"]
    if current is None or saved is None:  # e.g. CartPole's steps_beyond_terminated: None or a count
        return isinstance(saved, _SCALARS + (np.ndarray,))
    if isinstance(current, np.ndarray):
        return isinstance(saved, np.ndarray) and saved.shape == current.shape and saved.dtype == current.dtype
    return type(current) is type(saved)


def restore_env_state(env: gym.Env, state: list[dict]) -> bool:
    """Write ``state`` (from :func:`env_state`) back into ``env``; False, changing nothing, when
    its wrapper chain is not the one the state came from."""
    levels = _levels(env)
    if [type(level).__qualname__ for level in levels] != [saved["class"] for saved in state]:
        return False
    for level, saved in zip(levels, state):
        own = vars(level)
        for name, value in saved["attributes"].items():
            if name not in own or not _same_kind(own[name], value):
                continue
            if isinstance(own[name], np.random.Generator):
                own[name].bit_generator.state = value["numpy_generator"]
            else:
                own[name] = value.copy() if isinstance(value, np.ndarray) else value
    return True
