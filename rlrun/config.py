"""Typed config schema, registered in Hydra's ConfigStore.

Each YAML file under ``conf/`` names its schema in its defaults list, so a value of the wrong
type (``algo.clip_eps=abc``) or a misspelled key (``algo.clip_epss=0.1``) is refused by Hydra
before anything runs; a key added with ``+`` (``+algo.clip_epss=0.1``) is refused by
:func:`validate`, which also holds the range checks that a type cannot express.

The algorithm schemas are the dataclasses of ``rlrun/algos/schemas.py`` (``ALGO_SCHEMAS``),
registered here; this module imports neither torch nor gymnasium so that ``rlrun --help`` and
config errors answer at once.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from rlrun.algos.schemas import ALGO_SCHEMAS


MAX_SUFFIX_BYTES = 80


def job_dir_suffix(overrides: str) -> str:
    """``_<overrides>`` for a multirun job's directory name (conf/config.yaml), or "" without any.

    Long override strings (Optuna's sampled floats, many keys) keep a readable head and end in a
    hash of the whole, so that a name stays short and stable (a path component may have at most
    255 bytes); the full overrides are in the job's ``.hydra/overrides.yaml``."""
    if not overrides:
        return ""
    raw = overrides.encode()
    if len(raw) <= MAX_SUFFIX_BYTES:
        return f"_{overrides}"
    head = raw[:MAX_SUFFIX_BYTES - 13].decode(errors="ignore")
    if "," in head:
        head = head[:head.rindex(",")]  # whole overrides only: no value cut in the middle
    return f"_{head},...{hashlib.sha1(raw).hexdigest()[:8]}"


OmegaConf.register_new_resolver("rlrun_suffix", job_dir_suffix, replace=True)
# The Optuna presets' direction follows the objective: ${rlrun_direction:${objective}}.
OmegaConf.register_new_resolver("rlrun_direction", lambda objective: OBJECTIVES[objective], replace=True)
# A multirun job's number, zero-padded, so that its directories (and TensorBoard's runs and HParams
# rows, which sort by name) come in job order: 000, 001, ..., 010, not 0, 1, 10, 11, 2.
OmegaConf.register_new_resolver("rlrun_job_num", lambda num: f"{int(num):03d}", replace=True)


@dataclass
class EnvConfig:
    """The environment: any registered gymnasium id, vectorised."""

    id: str = "CartPole-v1"
    num_envs: int = 8
    vectorization: str = "sync"  # sync | async (subprocesses)
    normalize_obs: bool = False  # running mean/std of observations, saved in checkpoints
    normalize_reward: bool = False  # scale rewards by the running std of the discounted return
    clip_obs: float = 10.0
    clip_reward: float = 10.0
    reward_threshold: Optional[float] = None  # None: the env spec's reward_threshold
    max_episode_steps: Optional[int] = None  # None: the env spec's TimeLimit
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make


@dataclass
class Config:
    """Top-level keys. ``algo`` and ``env`` come from their config groups."""

    algo: Any = None
    env: EnvConfig = field(default_factory=EnvConfig)
    seed: int = 0
    total_steps: int = 100_000  # environment steps, summed over the vectorised envs
    device: str = "cpu"  # cpu | cuda | auto
    torch_threads: int = 1  # 0 keeps torch's default; 1 is fastest for small MLPs
    checkpoint_every: int = 20_000  # env steps between refreshes of checkpoints/last.pt; 0: only at the end
    keep_checkpoints: bool = False  # also keep checkpoints/step_<N>.pt at every checkpoint
    resume: Optional[str] = None  # a run directory to continue from its checkpoints/last.pt
    deterministic: bool = False  # torch.use_deterministic_algorithms (CPU runs are deterministic anyway)
    log_every: int = 1  # iterations between TensorBoard writes of the update metrics
    progress: str = "auto"  # auto | bar | lines | off
    solved_window: int = 20  # episodes averaged for final_return and solved_step
    objective: str = "final_return"  # what the task returns to a sweeper (Optuna): a summary.json key
    eval_every: int = 0  # env steps between deterministic evaluations on a separate env; 0: none
    eval_episodes: int = 10  # full episodes per evaluation


ALGO_NAMES = tuple(ALGO_SCHEMAS)
DEVICES = ("cpu", "cuda", "auto")
VECTORIZATIONS = ("sync", "async")
PROGRESS_MODES = ("auto", "bar", "lines", "off")
# What a sweeper (Optuna) can optimise, a summary.json key, and which way is better.
OBJECTIVES = {"final_return": "maximize", "solved_step": "minimize", "solved_wall_s": "minimize", "fps": "maximize",
              "eval_final_return": "maximize", "eval_best_return": "maximize"}


def register_configs() -> None:
    """Register the schemas that the YAML files extend (``defaults: [/schema/algo@_here_: <name>]``)."""
    cs = ConfigStore.instance()
    cs.store(name="_config_schema", node=Config)
    cs.store(group="schema/env", name="env", node=EnvConfig)
    for name, schema in ALGO_SCHEMAS.items():
        cs.store(group="schema/algo", name=name, node=schema)


class ConfigError(ValueError):
    """A config value that is well typed but not allowed; the message is one line."""


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def validate(cfg: Any) -> None:
    """Range checks on a composed config; raises ConfigError naming the key."""
    try:  # every interpolation resolves (``${oc.env:NOPE}``, ``seed=${seed}`` do not); Hydra's own node aside
        for key in cfg:
            if key != "hydra":
                node = cfg[key]
                if OmegaConf.is_config(node):
                    OmegaConf.to_container(node, resolve=True)
    except Exception as err:  # noqa: BLE001 - omegaconf raises several kinds; one line names the key
        key = getattr(err, "full_key", None)
        raise ConfigError(f"{key or 'config'}: {str(err).splitlines()[0]}") from None
    _check(cfg.total_steps > 0, "total_steps", cfg.total_steps, "must be > 0")
    _check(0 <= cfg.seed < 2**32, "seed", cfg.seed, "must be in [0, 2**32 - 1] (numpy's seed range)")
    _check(cfg.device in DEVICES, "device", cfg.device, f"one of {', '.join(DEVICES)}")
    _check(cfg.torch_threads >= 0, "torch_threads", cfg.torch_threads, "must be >= 0")
    _check(cfg.checkpoint_every >= 0, "checkpoint_every", cfg.checkpoint_every, "must be >= 0")
    _check(cfg.log_every >= 1, "log_every", cfg.log_every, "must be >= 1")
    _check(cfg.progress in PROGRESS_MODES, "progress", cfg.progress, f"one of {', '.join(PROGRESS_MODES)}")
    _check(cfg.objective in OBJECTIVES, "objective", cfg.objective, f"one of {', '.join(OBJECTIVES)}")
    _check(cfg.eval_every >= 0, "eval_every", cfg.eval_every, "must be >= 0 (0: no evaluation during training)")
    _check(cfg.eval_episodes >= 1, "eval_episodes", cfg.eval_episodes, "must be >= 1")
    _check(cfg.eval_every > 0 or not cfg.objective.startswith("eval_"), "objective", cfg.objective,
           "needs evaluations during training: set eval_every > 0")
    _check(cfg.solved_window >= 1, "solved_window", cfg.solved_window, "must be >= 1")
    env = cfg.env
    _check(bool(env.id), "env.id", env.id, "a registered gymnasium id")
    _check(env.num_envs >= 1, "env.num_envs", env.num_envs, "must be >= 1")
    _check(env.vectorization in VECTORIZATIONS, "env.vectorization", env.vectorization,
           f"one of {', '.join(VECTORIZATIONS)}")
    _check(env.clip_obs > 0, "env.clip_obs", env.clip_obs, "must be > 0")
    _check(env.clip_reward > 0, "env.clip_reward", env.clip_reward, "must be > 0")
    if env.max_episode_steps is not None:
        _check(env.max_episode_steps >= 1, "env.max_episode_steps", env.max_episode_steps, "must be >= 1")
    algo = cfg.algo
    _check(algo is not None and algo.name in ALGO_NAMES, "algo", getattr(algo, "name", None),
           f"one of {', '.join(ALGO_NAMES)}")
    _check(0.0 < algo.gamma <= 1.0, "algo.gamma", algo.gamma, "must be in (0, 1]")
    _check(0.0 <= algo.gae_lambda <= 1.0, "algo.gae_lambda", algo.gae_lambda, "must be in [0, 1]")
    _check(algo.n_steps >= 1, "algo.n_steps", algo.n_steps, "must be >= 1")
    for key in ("clip_eps", "max_kl", "kl_target", "learning_rate", "critic_lr", "cg_damping", "critic_max_kl",
                "critic_eta_max", "kl_coef_init", "target_kl", "max_grad_norm", "clip_value_eps", "adam_eps", "cg_tol"):
        if key in algo and algo[key] is not None:
            value = algo[key]
            _check(value > 0 and math.isfinite(value), f"algo.{key}", value, "must be > 0")
    for key in ("vf_coef", "ent_coef", "damping"):
        if key in algo:
            _check(algo[key] >= 0 and math.isfinite(algo[key]), f"algo.{key}", algo[key], "must be >= 0")
    _check(math.isfinite(algo.log_std_init), "algo.log_std_init", algo.log_std_init, "must be finite")
    if "stat_decay" in algo:
        _check(0.0 <= algo.stat_decay < 1.0, "algo.stat_decay", algo.stat_decay,
               "must be in [0, 1) (0: fresh K-FAC factors each iteration)")
    for key in ("n_epochs", "batch_size", "cg_iters", "critic_epochs", "policy_epochs", "inv_every"):
        if key in algo:
            _check(algo[key] >= 1, f"algo.{key}", algo[key], "must be >= 1")
    _check(algo.activation in ("tanh", "relu"), "algo.activation", algo.activation, "one of tanh, relu")
    _check(all(size >= 1 for size in algo.hidden_sizes), "algo.hidden_sizes", list(algo.hidden_sizes),
           "every layer size must be >= 1 ([] is a linear policy)")
    known = {f.name for f in fields(ALGO_SCHEMAS[algo.name])}
    for key in algo:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            _check(False, f"algo.{key}", algo[key], f"{algo.name} has no such key"
                   + (f" (did you mean algo.{close[0]}?)" if close else ""))
    for key, allowed in (("lr_schedule", ("constant", "linear")), ("clip_schedule", ("constant", "linear")),
                         ("critic_optimizer", ("kfac", "adam")), ("trust_region_fisher", ("exact", "kfac"))):
        if key in algo:
            _check(algo[key] in allowed, f"algo.{key}", algo[key], f"one of {', '.join(allowed)}")
    if "backtrack_coef" in algo:
        _check(0.0 < algo.backtrack_coef < 1.0, "algo.backtrack_coef", algo.backtrack_coef, "must be in (0, 1)")
    if "momentum" in algo:
        _check(0.0 <= algo.momentum < 1.0, "algo.momentum", algo.momentum, "must be in [0, 1)")
    if algo.get("log_std_kl_share") is not None:
        _check(0.0 < algo.log_std_kl_share < 1.0, "algo.log_std_kl_share", algo.log_std_kl_share,
               "must be in (0, 1), or null for one step scale")
    for key in ("kl_tolerance", "kl_adapt_factor"):
        if key in algo:
            _check(algo[key] > 1.0, f"algo.{key}", algo[key], "must be > 1")
    if "backtrack_iters" in algo:
        _check(algo.backtrack_iters >= 0, "algo.backtrack_iters", algo.backtrack_iters, "must be >= 0")


# Keys a resumed run may change; any other difference from the checkpoint's config is refused.
# The device too: checkpoints load onto the CPU first, so a CUDA run continues on a CPU machine.
RESUMABLE_CHANGES = {"resume", "total_steps", "progress", "checkpoint_every", "keep_checkpoints", "log_every",
                     "eval_every", "eval_episodes", "device"}


def check_resume_agrees(saved: dict, current: Any, resume: str) -> None:
    """Refuse a resume whose config (a DictConfig, or a dict without the hydra node) differs from
    its checkpoint's beyond RESUMABLE_CHANGES; preflight checks it unresolved, the trainer resolved."""
    if not isinstance(current, dict):
        current = OmegaConf.to_container(current, resolve=True)
    current = {key: value for key, value in current.items() if key != "hydra"}
    diffs = config_differences(saved, current)
    if diffs:
        raise ConfigError(f"resume={resume} conflicts with its checkpoint: {'; '.join(diffs)}")


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Keys whose values differ between a checkpoint's config and the current one (dotted names)."""
    keys = set(saved) | set(current)
    out = []
    for key in sorted(keys):
        name = f"{prefix}{key}"
        if name in RESUMABLE_CHANGES:
            continue
        a, b = saved.get(key, "<missing>"), current.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{name}.")
        elif a != b:
            out.append(f"{name}: checkpoint {a!r} vs now {b!r}")
    return out
