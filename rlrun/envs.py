"""Vectorised gymnasium environments and the checks on what rlrun supports.

Sub-environments reset automatically in gymnasium's SAME_STEP mode: when an episode ends, the
step returns the next episode's first observation and keeps the real final observation in
``info["final_obs"]``, which the rollout needs to bootstrap through a truncation.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import signal
import sys
import threading
from typing import Any, Iterator, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import concatenate, create_empty_array

from rlrun.errors import EnvError, NumericalError
from rlrun.observations import leaves
from rlrun.signals import STOP_SIGNALS  # the signals a run saves on: its async workers ignore them

OBS_LEAVES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
SUPPORTED_OBS = "Box, Discrete, MultiDiscrete, MultiBinary, or a Dict or Tuple of those (nested too)"
SUPPORTED_ACTIONS = "Discrete, MultiDiscrete, MultiBinary or 1-D Box"


_REGISTERED: set[str] = set()
# The packages rlrun's own env configs name (conf/env: env.register, env.wrappers), and rlrun.
TRUSTED_PACKAGES = ("gymnasium", "ale_py", "minatar", "rlrun")


def modules_named(env_cfg: Any) -> list[tuple[str, str]]:
    """(config key, module) for each module that building this env imports: ``env.register``, an
    ``env.id`` of the form ``module:Id``, each ``env.wrappers`` target."""
    named = []
    if env_cfg.get("register"):
        named.append(("env.register", str(env_cfg.register).partition(":")[0]))
    if ":" in str(env_cfg.id):
        named.append(("env.id", str(env_cfg.id).rpartition(":")[0]))
    for i, wrapper in enumerate(env_cfg.get("wrappers") or []):
        target = wrapper.get("target") if hasattr(wrapper, "get") else None
        named.append((f"env.wrappers[{i}].target", str(target).partition(":")[0]))
    return named


def untrusted_modules(env_cfg: Any) -> list[tuple[str, str]]:
    """The modules of :func:`modules_named` that are neither rlrun's own env packages nor imported
    already: importing one runs its code, so a config that came with a checkpoint needs consent."""
    return [(key, module) for key, module in modules_named(env_cfg)
            if module.split(".")[0] not in TRUSTED_PACKAGES and module not in sys.modules]


def consent_needed(env_cfg: Any, source: str, how: str) -> str | None:
    """The one-line refusal for a config from ``source`` whose env would import an untrusted module
    (``how``: how the user consents); None when there is none."""
    untrusted = untrusted_modules(env_cfg)
    if not untrusted:
        return None
    named = ", ".join(f"{module!r} ({key})" for key, module in untrusted)
    return (f"{source} names modules that building its env would import, which runs their code: {named}; "
            f"if you trust where it came from, {how}")


def register_envs(register: str | None) -> None:
    """Call ``env.register`` (``module:function``, e.g. ``minatar.gym:register_envs``) once per
    process: for packages that register their ids when a function is called, not on import (a
    module name alone is imported: ``ale_py``)."""
    if not register or register in _REGISTERED:
        return
    module, _, function = register.partition(":")
    try:
        imported = importlib.import_module(module)  # a module alone registers on import (ale_py)
        register_function = getattr(imported, function) if function else None
    except (ImportError, AttributeError) as err:
        raise EnvError(f"env.register={register!r} cannot be called ({type(err).__name__}: {err}); it names "
                       "module:function or a module, e.g. minatar.gym:register_envs (pip install 'rlrun[minatar]')") from None
    if register_function is not None:
        try:
            register_function()
        except TypeError as err:  # e.g. a function that needs arguments
            raise EnvError(f"env.register={register!r} cannot be called without arguments ({err})") from None
    _REGISTERED.add(register)


def check_env_id(env_id: str, register: str | None = None) -> gym.envs.registration.EnvSpec:
    """The spec of a registered id, or an EnvError suggesting close registered names.

    ``module:EnvName-v0`` imports ``module`` first (as ``gymnasium.make`` does), so envs that
    a package registers on import work too; ``register`` (``env.register``) is called first.
    """
    register_envs(register)
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise EnvError(f"env.id={env_id!r}: module {module!r} cannot be imported ({err})") from None
    try:
        return gym.spec(name)
    except gym.error.Error as err:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.pprint_registry()"
        if not register and not close:
            hint += " (a package that registers its ids by a call is named in env.register=module:function)"
        raise EnvError(f"env.id={env_id!r} is not a registered gymnasium environment ({err}){hint}") from None


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space, env_id: str) -> None:
    unsupported = [leaf for _, leaf in leaves(observation_space) if not isinstance(leaf, OBS_LEAVES)]
    if unsupported:
        raise EnvError(f"env.id={env_id!r} has observation space {observation_space}; rlrun supports {SUPPORTED_OBS}")
    box_1d = isinstance(action_space, spaces.Box) and len(action_space.shape) == 1
    if not (isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)) or box_1d):
        raise EnvError(f"env.id={env_id!r} has action space {action_space}; rlrun supports {SUPPORTED_ACTIONS}")


def make_env(env_cfg: Any, render_mode: str | None = None) -> gym.Env:
    """One env of ``env_cfg`` (its kwargs and time limit), as training, preflight and evaluation use it."""
    register_envs(env_cfg.get("register"))  # also in an async worker process
    kwargs = dict(env_cfg.kwargs)
    if env_cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = env_cfg.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        # The passive checker only inspects the first steps but stays a wrapper on every step.
        env = gym.make(env_cfg.id, disable_env_checker=True, **kwargs)
        for wrapper in env_cfg.get("wrappers") or []:  # e.g. Atari's preprocessing and frame stack
            env = _callable(wrapper["target"], "env.wrappers")(env, **dict(wrapper.get("kwargs") or {}))
            if not isinstance(env, gym.Env):
                raise EnvError(f"env.wrappers: {wrapper['target']!r} returned {type(env).__name__}, not a gymnasium "
                               f"env; a wrapper takes the env (and its kwargs) and returns the wrapped env")
        return env
    except gym.error.DependencyNotInstalled as err:
        raise EnvError(missing_extra(env_cfg.id, str(err))) from None


# The extra that installs what an env's DependencyNotInstalled names (gymnasium's message).
DEPENDENCY_EXTRAS = {"box2d": "box2d", "mujoco": "mujoco", "ale_py": "atari", "[atari": "atari", "pygame": "video",
                     "moviepy": "video"}


def missing_extra(env_id: str, message: str) -> str:
    """One line naming the missing dependency and the install command of the one extra that has it,
    in the README's form."""
    first = message.strip().splitlines()[0] if message.strip() else "a dependency is missing"
    extra = next((extra for word, extra in DEPENDENCY_EXTRAS.items() if word in message.lower()), None)
    if extra is None:
        return f"env.id={env_id!r} needs an optional dependency ({first}); rlrun's env extras are box2d, mujoco and atari"
    return (f"env.id={env_id!r} needs an optional dependency ({first}): pip install -e '.[{extra}]' in rlrun's "
            f"checkout (pip install 'rlrun[{extra}]' from an index)")


def _callable(target: str, key: str) -> Any:
    """``module:name`` imported, or an EnvError naming ``key``."""
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise EnvError(f"{key}: {target!r} cannot be imported ({type(err).__name__}: {err}); "
                       "it names module:callable, e.g. gymnasium.wrappers:FrameStackObservation") from None


def check_spaces_of(env_cfg: Any) -> spaces.Space:
    """Make one env of ``env_cfg`` and check its spaces (and that its optional dependency is installed);
    returns its observation space."""
    try:
        env = make_env(env_cfg)
    except EnvError:
        raise
    except Exception as err:
        raise EnvError(f"env.id={env_cfg.id!r} could not be made: {type(err).__name__}: {err}") from None
    try:
        check_spaces(env.observation_space, env.action_space, env_cfg.id)
        return env.observation_space
    finally:
        env.close()


def make_worker_env(env_cfg: Any, render_mode: str | None = None) -> gym.Env:
    """:func:`make_env` in an async worker process, which leaves the stop signals to the main process.

    A terminal's Ctrl-C and SIGHUP and SLURM's SIGTERM go to the whole process group. A worker that died of
    them would break its pipe before the main process could finish the iteration and save."""
    if threading.current_thread() is threading.main_thread():  # signal.signal works there only
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
    return make_env(env_cfg, render_mode)


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Hold the stop signals while worker processes start (they inherit the mask, so a signal in
    that window cannot kill one before :func:`make_worker_env` ignores it); delivered afterwards.

    AsyncVectorEnv also builds one env in this process, to read its spaces, through
    :func:`make_worker_env`: this process's own handlers are put back before the mask is lifted,
    or the run would ignore Ctrl-C."""
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def make_vec_env(env_cfg: Any, render_mode: str | None = None) -> VectorEnv:
    """``env_cfg.num_envs`` copies of ``env_cfg.id``, sync or async (not yet reset)."""
    check_env_id(env_cfg.id, env_cfg.get("register"))
    if env_cfg.vectorization == "sync":
        envs = SyncVectorEnv([functools.partial(make_env, env_cfg, render_mode)] * env_cfg.num_envs,
                             autoreset_mode=AutoresetMode.SAME_STEP)
    else:
        with stop_signals_blocked():
            envs = AsyncVectorEnv([functools.partial(make_worker_env, env_cfg, render_mode)] * env_cfg.num_envs,
                                  autoreset_mode=AutoresetMode.SAME_STEP)
    check_spaces(envs.single_observation_space, envs.single_action_space, env_cfg.id)
    return envs


class VectorStep(NamedTuple):
    """One step of every env of a vector env, with SAME_STEP autoreset."""

    obs: Any  # the next observations: a new episode's first where one ended
    rewards: np.ndarray  # float64 [N]
    terminated: np.ndarray  # bool [N]
    truncated: np.ndarray  # bool [N]
    final_obs: dict[int, Any]  # env index -> the last observation of its episode, for the envs whose episode ended
    lives: np.ndarray | None  # info["lives"] after the step (Atari), None when no env reports it


def step_envs(envs: VectorEnv, actions: np.ndarray) -> VectorStep:
    """``envs.step(actions)``, as a :class:`VectorStep`.

    A SyncVectorEnv's sub-environments are stepped here: the same calls in the same order as its
    ``step`` in SAME_STEP mode (step; on an episode's end keep its observation and reset), without
    the per-step dictionaries of every info key it assembles, of which the rollout reads only
    ``lives``. Other vector envs (async) go through their ``step``."""
    if not isinstance(envs, SyncVectorEnv):
        obs, rewards, terminated, truncated, info = envs.step(actions)
        final_obs = {int(i): info["final_obs"][i] for i in np.flatnonzero(terminated | truncated)}
        lives = np.asarray(info["lives"]) if "lives" in info else None
        return VectorStep(obs, rewards, terminated, truncated, final_obs, lives)
    n = envs.num_envs
    observations, rewards = [None] * n, np.zeros(n, np.float64)
    terminated, truncated = np.zeros(n, np.bool_), np.zeros(n, np.bool_)
    final_obs: dict[int, Any] = {}
    lives = None
    for i, env in enumerate(envs.envs):
        observations[i], reward, terminated[i], truncated[i], info = env.step(actions[i])
        if reward is None:  # numpy would store it as NaN
            raise NumericalError(f"env {i} returned a reward of None from step(); a number is required")
        rewards[i] = reward
        if terminated[i] or truncated[i]:
            final_obs[i] = observations[i]
            observations[i], info = env.reset()
        if "lives" in info:
            if lives is None:
                lives = np.zeros(n, np.asarray(info["lives"]).dtype)
            lives[i] = info["lives"]
    space = envs.single_observation_space
    # a Box's batch as np.array builds it (a copy, in the space's dtype); other spaces as gymnasium does
    obs = (np.array(observations, dtype=space.dtype) if type(space) is spaces.Box
           else concatenate(space, observations, create_empty_array(space, n)))
    return VectorStep(obs, rewards, terminated, truncated, final_obs, lives)


def reward_threshold(env_cfg: Any) -> float | None:
    """The configured threshold, else the gymnasium spec's ``reward_threshold``, else None."""
    if env_cfg.reward_threshold is not None:
        return float(env_cfg.reward_threshold)
    return check_env_id(env_cfg.id, env_cfg.get("register")).reward_threshold
