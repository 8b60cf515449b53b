"""Typed config schema, registered in Hydra's ConfigStore.

The top-level keys and ``env`` are typed here; the ``algo`` group is each algorithm's own config
dataclass, registered from :func:`rlrun.algos.registry.configs`, which reads them from the
algorithm files without importing torch (``rlrun --cfg job`` and config errors answer at once). A value of the wrong
type (``algo.clip_eps=abc``) or a misspelled key (``algo.clip_epss=0.1``) is refused by Hydra
before anything runs; a key added with ``+`` (``+algo.clip_epss=0.1``) is refused by
:func:`validate`, which also runs the range checks that a type cannot express (an algorithm's
live beside its fields: :mod:`rlrun.knobs`, as the run's and the env's do).
"""

from __future__ import annotations

import difflib
import hashlib
import math
from dataclasses import dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from rlrun.algos.registry import configs
from rlrun.errors import ConfigError
from rlrun.knobs import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Check, check_fields, knob, one_of


def _conf_dir() -> Path:
    """The installed ``rlrun.conf`` package (the repository's top-level ``conf/``)."""
    try:
        return Path(str(files("rlrun.conf")))
    except ModuleNotFoundError:  # imported from a source checkout that is not installed
        return Path(__file__).resolve().parent.parent / "conf"


CONF_DIR = _conf_dir()


def default_choice(group: str) -> str:
    """The option conf/config.yaml's defaults list picks for a config group (``algo``, ``env``)."""
    entries = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml").defaults)
    return next(entry[group] for entry in entries if isinstance(entry, dict) and group in entry)


def tuned_values(tuned_file: str) -> dict[str, Any]:
    """What a ``conf/tuned/`` file sets, as dotted keys (``algo.n_steps``), ``tuned_file`` itself aside."""
    node = OmegaConf.load(CONF_DIR / Path(tuned_file).relative_to("conf"))
    flat: dict[str, Any] = {}

    def walk(value: Any, prefix: str) -> None:
        if OmegaConf.is_dict(value):
            for key, child in value.items():
                walk(child, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = OmegaConf.to_container(value) if OmegaConf.is_list(value) else value

    walk(node, "")
    flat.pop("tuned_file", None)
    return flat


def tuned_settings(cfg: Any) -> list[tuple[str, Any, Any]]:
    """(key, the tuned file's value, the run's value) for what the run's tuned file sets: the two
    differ where the command line overrode the file."""
    return [(key, value, OmegaConf.select(cfg, key)) for key, value in tuned_values(cfg.tuned_file).items()]


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


MAX_JOB_DIR_BYTES = 200  # per path component


def _component(text: str) -> str:
    """``text`` as one path component: ``/`` and ``\\`` become ``-`` (no job nests deeper or leaves
    the sweep's folder), ``.`` and ``..`` get a ``_``, and a name longer than MAX_JOB_DIR_BYTES keeps
    its head and ends in a hash of the whole."""
    name = text.replace("/", "-").replace("\\", "-").replace("\0", "")
    if name in ("", ".", ".."):
        name = f"_{name}"
    raw = name.encode()
    if len(raw) > MAX_JOB_DIR_BYTES:
        name = f"{raw[:MAX_JOB_DIR_BYTES - 9].decode(errors='ignore')}~{hashlib.sha1(raw).hexdigest()[:8]}"
    return name


JOB_DIR_DEPTH = 3  # <algo>/<env id>/seed<seed>[_<overrides>]


def job_dir_name(algo: str, env_id: str, seed: int, overrides: str) -> str:
    """A multirun job's directory, ``<algo>/<env id>/seed<seed>[_<overrides>]`` under the sweep's
    (JOB_DIR_DEPTH levels down), so that TensorBoard's run list reads ``trpo/CartPole-v1/seed0``
    when it is opened on the sweep. Each level is one path component of its own (``_component``:
    ``MinAtar/Breakout-v1`` becomes ``MinAtar-Breakout-v1``). Two jobs with the same overrides
    would share a directory: the checks before a sweep refuse that (``launch.checks.preflight``)."""
    return "/".join(_component(part) for part in (str(algo), str(env_id), f"seed{seed}{job_dir_suffix(overrides)}"))


def sweep_dir_of(job_dir: Path) -> Path:
    """The sweep folder a multirun job's directory (``job_dir_name``) lies in."""
    return job_dir.parents[JOB_DIR_DEPTH - 1]


def override_key(override: str) -> str:
    """The key an override sets: ``++algo.clip_eps=0.1`` -> ``algo.clip_eps``."""
    return override.split("=", 1)[0].lstrip("+~")


# Command-line keys that do not tell one experiment from another: the axes runs are grouped by
# (algo, env, seed) and output-only knobs. They are left out of a sweep job's directory name
# (conf/config.yaml), of the HParams columns, and of rlrun-report's grouping.
NON_EXPERIMENT_KEYS = ("algo", "env", "seed", "resume", "progress", "checkpoint_every", "keep_checkpoints", "log_every")

OmegaConf.register_new_resolver("rlrun_job_dir", job_dir_name, replace=True)
OmegaConf.register_new_resolver("rlrun_non_experiment_keys", lambda: list(NON_EXPERIMENT_KEYS), replace=True)
# conf/sweep/all_algos.yaml sweeps every registered algorithm: ${rlrun_every_algorithm:}.
OmegaConf.register_new_resolver("rlrun_every_algorithm", lambda: ",".join(configs()), replace=True)
# The Optuna presets' direction follows the objective: ${rlrun_direction:${objective}}.
OmegaConf.register_new_resolver("rlrun_direction", lambda objective: OBJECTIVES[objective], replace=True)


DEVICES = ("cpu", "cuda", "auto")
VECTORIZATIONS = ("sync", "async")
PROGRESS_MODES = ("auto", "bar", "lines", "off")
# What a sweeper (Optuna) can optimise, a summary.json key, and which way is better.
OBJECTIVES = {"final_return": "maximize", "solved_step": "minimize", "solved_wall_s": "minimize", "fps": "maximize",
              "eval_final_return": "maximize", "eval_best_return": "maximize"}


@dataclass
class EnvConfig:
    """The environment: any registered gymnasium id, vectorised."""

    id: str = knob("CartPole-v1", "a registered gymnasium id (module:Id imports the module first)",
                   Check(bool, "a registered gymnasium id"))
    num_envs: int = knob(8, "copies of the env stepped together", AT_LEAST_ONE)
    vectorization: str = knob("sync", "sync (one process) or async (a subprocess each)", one_of(*VECTORIZATIONS))
    normalize_obs: bool = knob(False, "running mean/std of observations, saved in checkpoints (SB3's VecNormalize)")
    normalize_reward: bool = knob(False, "scale rewards by the running std of the discounted return (VecNormalize)")
    clip_obs: float = knob(10.0, "normalised observations clipped to +-this (VecNormalize)", POSITIVE)
    clip_reward: float = knob(10.0, "normalised rewards clipped to +-this (VecNormalize)", POSITIVE)
    reward_threshold: Optional[float] = knob(None, "the return that counts as solved; null: the env spec's",
                                             Check(math.isfinite, "a finite number"))
    max_episode_steps: Optional[int] = knob(None, "the episode's time limit; null: the env spec's TimeLimit",
                                            AT_LEAST_ONE)
    kwargs: dict[str, Any] = knob({}, "passed to gymnasium.make")
    register: Optional[str] = knob(None, "module:function that registers the id (MinAtar: minatar.gym:register_envs), "
                                         "or a module")
    wrappers: list[Any] = knob([], "[{target: module:Class, kwargs: {...}}], applied in order (Atari's preprocessing)")
    sign_rewards: bool = knob(False, "train on sign(r) (Atari's reward clipping); episode returns stay unclipped")
    life_loss_terminal: bool = knob(False, "a lost life (info['lives']) ends bootstrapping in training; episodes stay "
                                           "whole games")


@dataclass
class Config:
    """Top-level keys. ``algo`` and ``env`` come from their config groups."""

    algo: Any = None
    env: EnvConfig = field(default_factory=EnvConfig)
    seed: int = knob(0, "seeds torch, numpy, the envs and the algorithm's generators",
                     Check(lambda v: 0 <= v < 2**32, "must be in [0, 2**32 - 1] (numpy's seed range)"))
    total_steps: int = knob(100_000, "environment steps, summed over the vectorised envs", POSITIVE)
    device: str = knob("cpu", "cpu, cuda, or auto (cuda when there is one)", one_of(*DEVICES))
    torch_threads: int = knob(1, "0 keeps torch's default; 1 is fastest for small MLPs", NON_NEGATIVE)
    checkpoint_every: int = knob(20_000, "env steps between refreshes of checkpoints/last.pt; 0: only at the end",
                                 NON_NEGATIVE)
    keep_checkpoints: bool = knob(False, "also keep checkpoints/step_<N>.pt at every checkpoint")
    resume: Optional[str] = knob(None, "a run directory to continue from its checkpoints/last.pt")
    deterministic: bool = knob(False, "torch.use_deterministic_algorithms (CPU runs are deterministic anyway)")
    log_every: Optional[int] = knob(None, "iterations between TensorBoard writes of the update metrics; null: the "
                                          "algorithm's", Check(lambda v: v >= 1,
                                                               "must be >= 1, or null for the algorithm's own interval"))
    progress: str = knob("auto", "auto, bar, lines or off", one_of(*PROGRESS_MODES))
    solved_window: int = knob(20, "episodes averaged for final_return and solved_step", AT_LEAST_ONE)
    objective: str = knob("final_return", "what the task returns to a sweeper (Optuna): a summary.json key",
                          one_of(*OBJECTIVES))
    eval_every: int = knob(0, "env steps between deterministic evaluations on a separate env; 0: none",
                           Check(lambda v: v >= 0, "must be >= 0 (0: no evaluation during training)"))
    eval_episodes: int = knob(10, "full episodes per evaluation", AT_LEAST_ONE)
    tuned_file: Optional[str] = knob(None, "the conf/tuned/<algo>/<env>.yaml this run applied (each file sets it); "
                                           "tuned=none: none")


def register_configs() -> None:
    """The top-level schema, the env schema the env YAML files extend, and the ``algo`` group: one
    option per registered algorithm, its typed config with its defaults."""
    cs = ConfigStore.instance()
    cs.store(name="_config_schema", node=Config)
    cs.store(group="schema/env", name="env", node=EnvConfig)
    for name, config in configs().items():
        cs.store(group="algo", name=name, node=config)


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
    check_fields(cfg, Config)
    _check(cfg.eval_every > 0 or not cfg.objective.startswith("eval_"), "objective", cfg.objective,
           "needs evaluations during training: set eval_every > 0")
    if cfg.tuned_file is not None:
        tuned = Path(cfg.tuned_file)
        _check(tuned.parts[:2] == ("conf", "tuned") and (CONF_DIR / tuned.relative_to("conf")).is_file(),
               "tuned_file", cfg.tuned_file, "set by the tuned file itself: conf/tuned/<algo>/<env>.yaml (tuned=none: none)")
    env = cfg.env
    check_fields(env, EnvConfig, "env")
    algo, registered = cfg.algo, configs()
    _check(algo is not None and algo.name in registered, "algo", getattr(algo, "name", None),
           f"one of {', '.join(registered)}")
    schema = registered[algo.name]
    known = {f.name for f in fields(schema)}
    for key in algo:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            _check(False, f"algo.{key}", algo[key], f"{algo.name} has no such key"
                   + (f" (did you mean algo.{close[0]}?)" if close else ""))
    check_fields(algo, schema, "algo")
    batch = algo.n_steps * env.num_envs
    _check(batch >= 2 or not algo.get("normalize_advantage"), "algo.normalize_advantage", True,
           f"standardising a batch of {batch} sample needs at least 2: raise algo.n_steps or env.num_envs, "
           f"or set algo.normalize_advantage=false")
    check_combination = getattr(schema, "check_combination", None)  # knobs that exclude each other
    if check_combination is not None:
        check_combination(algo)


# Keys a resumed run may change; any other difference from the checkpoint's config is refused.
# The device too: checkpoints load onto the CPU first, so a CUDA run continues on a CPU machine.
RESUMABLE_CHANGES = {"resume", "total_steps", "progress", "checkpoint_every", "keep_checkpoints", "log_every",
                     "eval_every", "eval_episodes", "device"}


def over_schema(saved: dict) -> dict:
    """A checkpoint's config laid over today's schema: keys added since it was written take their
    defaults, keys since removed are dropped, so a checkpoint of an earlier version loads and
    resumes (its algorithm must still exist)."""
    algo_schema = configs().get(str((saved.get("algo") or {}).get("name")))
    if algo_schema is None:
        return saved

    def laid(schema: Any, values: dict) -> dict:
        base = OmegaConf.to_container(OmegaConf.structured(schema))
        base.update({key: value for key, value in values.items() if key in base})
        return base

    config = laid(Config, {key: value for key, value in saved.items() if key not in ("algo", "env")})
    config["algo"], config["env"] = laid(algo_schema, saved["algo"]), laid(EnvConfig, saved.get("env") or {})
    return config


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
