"""Preflight: compose every job of a command as Hydra would and check it (types, ranges, env ids,
spaces, encoders, a writable output folder, memory), so that bad input gets one line and exit
status 2 and leaves nothing behind. Raises ConfigError; imports gymnasium only after the config's
own checks and torch only for a device or a checkpoint."""

from __future__ import annotations

import copy
import difflib
import itertools
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

from hydra.core.config_store import ConfigStore
# Private, hydra-core 1.3 (pinned): the public compose() composes a whole config per call, and a
# sweep's jobs that differ only in values would each pay for one; JobComposer applies those values
# to a copy of one composition with the function compose() itself applies them with.
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rlrun.config import CONF_DIR, OBJECTIVES, check_resume_agrees, override_key, validate
from rlrun.errors import ConfigError, RlrunError, one_line
from rlrun.launch.arguments import TRUST_FLAG, register_env_ids, split_overrides
from rlrun.launch.run_folders import check_no_links, check_unused_run_dir, check_writable, hold

# Hydra's launcher and sweeper options that come from a plugin, and the extra that installs it.
PLUGIN_EXTRAS = {"launcher": {"joblib": "joblib", "ray": "ray", "ray_aws": "ray", "ray_local": "ray",
                              "ray_cluster": "ray", "submitit_slurm": "slurm", "submitit_local": "slurm"},
                 "sweeper": {"optuna": "optuna"}}

def explain(err: Exception) -> str:
    """One line for a composition error: for a launcher or sweeper whose plugin is not installed,
    the command that installs it; otherwise Hydra's own message (:func:`one_line`)."""
    missing = re.search(r"Could not find '/?hydra/(launcher|sweeper)/(\w+)'", str(err))
    extra = PLUGIN_EXTRAS.get(missing[1], {}).get(missing[2]) if missing else None
    if extra is None:
        return one_line(err)
    return (f"hydra/{missing[1]}={missing[2]} needs Hydra's {extra} plugin, which is not installed: "
            f"pip install -e '.[{extra}]' in rlrun's checkout (pip install 'rlrun[{extra}]' from an index; "
            f"'.[sweep]' installs every launcher and sweeper)")

class Checked(NamedTuple):
    """What the preflight checked."""

    sweep_dir: str | None  # a sweep's directory, resolved and absolute; None for a single run
    jobs: list[list[str]]  # each job's overrides, all composed and checked (none for a sweep it cannot list)


def preflight(argv: list[str], resuming: bool = False, trust_modules: bool = False,
              config_only: bool = False) -> Checked:
    """Compose and check each job the command would run; raise ConfigError with one line.
    ``resuming``: the config came from a run or sweep directory, so the modules its env names need
    ``trust_modules`` (or to be imported already)."""
    from hydra import compose, initialize_config_dir

    task, hydra_overrides = split_overrides(argv)
    for o in task:
        if o.startswith("algo=") and "," not in o:
            check_algo(o.split("=", 1)[1])
    observation_spaces: dict[str, Any] = {}  # env id -> its observation space, checked once per env
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        first = None  # a single run's composed config, when it is the job's own (no value with a comma)
        try:
            multirun = any(a in ("-m", "--multirun") for a in argv)
            if not multirun:  # a preset may set hydra.mode: MULTIRUN and its sweep in hydra.sweeper.params
                first = compose(config_name="config", overrides=[o for o in task if "," not in o] + hydra_overrides,
                                return_hydra_config=True)
                multirun = first.hydra.mode == RunMode.MULTIRUN
                params = OmegaConf.select(first, "hydra.sweeper.params") or {}
                task = [f"{k}={v}" for k, v in params.items() if not any(o.startswith(f"{k}=") for o in task)] + task
                if multirun or any("," in o for o in task):
                    first = None
            jobs = list_jobs(task) if multirun else [task]
        except Exception as err:
            raise ConfigError(explain(err)) from None
        register_env_ids(task)
        if jobs is not None:
            check_distinct(jobs)
        listed = jobs is not None
        if jobs is None:  # e.g. optuna ranges: the sweeper samples the jobs; check the fixed part here
            jobs = [without_sweeps(task)]  # and the task checks each sampled job
        composed = JobComposer(compose, hydra_overrides)
        sweep_dir = None
        for number, job in enumerate(jobs):
            try:
                cfg = first if first is not None else composed(job)
                validate(cfg)
                check_sweeper_direction(cfg)
                if number == 0:
                    check_launcher(cfg)
            except Exception as err:
                message = str(err) if isinstance(err, ConfigError) else explain(err)
                raise ConfigError(of_job(message, number, job, len(jobs))) from None
            if config_only:  # --cfg: the config's own checks, no env, no folder, no torch
                continue
            if cfg.resume:
                check_resume(cfg)
            elif len(jobs) == 1:
                note = overshoot_note(cfg)
                if note:
                    print(f"rlrun: note: {note}", file=sys.stderr)
            from rlrun.envs import check_env_id, check_spaces_of, consent_needed  # gymnasium: after the checks
            from rlrun.observations import check_encoder

            if resuming and not trust_modules:  # before anything is imported
                refusal = consent_needed(cfg.env, "the run's config", f"add {TRUST_FLAG}")
                if refusal:
                    raise ConfigError(of_job(refusal, number, job, len(jobs)))

            if cfg.env.id not in observation_spaces:
                try:
                    check_env_id(cfg.env.id, cfg.env.register)
                    observation_spaces[cfg.env.id] = check_spaces_of(cfg.env)
                except RlrunError as err:
                    raise ConfigError(str(err)) from None
            try:  # the encoder the job asks for against its env's observations
                check_encoder(cfg.algo, observation_spaces[cfg.env.id])
            except ValueError as err:
                raise ConfigError(of_job(str(err), number, job, len(jobs))) from None
            output_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
            output_dir = OmegaConf.select(cfg, output_key)
            check_writable(output_key, output_dir)
            if multirun and sweep_dir is None:
                sweep_dir = str(Path(output_dir).expanduser().absolute())
            if not multirun:  # a sweep's jobs may run elsewhere (SLURM's GPU nodes): they check their own
                check_device(cfg.device)
                check_memory(cfg, observation_spaces[cfg.env.id])
                cores = os.cpu_count() or 1
                if cfg.torch_threads > cores:
                    raise ConfigError(f"torch_threads={cfg.torch_threads} is not allowed: this machine has {cores} "
                                      f"cores (more threads than cores only slow torch down; 1 is fastest for small MLPs)")
                if not cfg.resume:
                    check_unused_run_dir(OmegaConf.select(cfg, "hydra.run.dir"))
                    if any(override_key(o) == "hydra.run.dir" for o in hydra_overrides):
                        check_no_links(Path(OmegaConf.select(cfg, "hydra.run.dir")).expanduser())
                        hold(Path(OmegaConf.select(cfg, "hydra.run.dir")).expanduser())
    return Checked(sweep_dir, jobs if listed else [])


def skip_checked_jobs(jobs: list[list[str]]) -> None:
    """Hydra's basic sweeper composes every job of a batch once more before launching it
    (``Sweeper.validate_batch_is_legal``: a whole composition a job, one after another before the
    first job starts, seconds for a sweep of a few dozen). The jobs the preflight has just composed
    and checked are not composed again; any other job of a batch still is."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.plugins.sweeper import Sweeper

    checked = {job_key(job) for job in jobs}

    def validate_unchecked(self: BasicSweeper, batch: Sequence[Sequence[str]]) -> None:
        unchecked = [job for job in batch if job_key(job) not in checked]
        if unchecked:
            Sweeper.validate_batch_is_legal(self, unchecked)  # Hydra's own check, which BasicSweeper inherits

    BasicSweeper.validate_batch_is_legal = validate_unchecked  # type: ignore[method-assign]


def job_key(job: Sequence[str]) -> frozenset[str]:
    """A job's overrides as the basic sweeper writes them (``key=value``), whatever their order."""
    return frozenset(f"{o.get_key_element()}={o.get_value_element_as_str()}"
                     for o in OverridesParser.create().parse_overrides(list(job)))


def of_job(message: str, number: int, job: list[str], n_jobs: int) -> str:
    """A preflight error, naming the sweep job it belongs to when there is more than one."""
    return message if n_jobs == 1 else f"job {number:03d} ({' '.join(job)}): {message}"

def check_algo(value: str) -> None:
    from rlrun.algos.registry import configs

    options = list(configs())
    if value not in options:
        close = difflib.get_close_matches(value, options, n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(f"algo={value!r} is not an algorithm{hint}; choose one of {', '.join(options)}")

def list_jobs(overrides: list[str]) -> list[list[str]] | None:
    """Every job of a sweep as a list of plain overrides; None if a sweep cannot be listed (optuna ranges)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    axes = []
    for o in parsed:
        if o.is_sweep_override():
            try:
                axes.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
            except Exception:
                return None
        else:
            axes.append([o.input_line])
    return [list(job) for job in itertools.product(*axes)]

def check_distinct(jobs: list[list[str]]) -> None:
    """Two jobs of a sweep with the same overrides would be one run in one directory
    (config.job_dir_name): refused, naming them."""
    seen: dict[frozenset[str], int] = {}
    for number, job in enumerate(jobs):
        key = frozenset(job)
        if key in seen:
            raise ConfigError(f"jobs {seen[key]:03d} and {number:03d} of the sweep are the same run ({' '.join(job)}): "
                              f"a value is repeated; list each value once")
        seen[key] = number

def without_sweeps(overrides: list[str]) -> list[str]:
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [o.input_line for o in parsed if not o.is_sweep_override()]

class JobComposer:
    """Each job's composed config, as Hydra would compose it, without composing each from scratch
    (a whole composition a job adds up over a large sweep): jobs that choose the same config
    groups share one composition, and their other overrides are applied to a copy of it as Hydra
    applies them after the defaults list."""

    def __init__(self, compose: Callable[..., DictConfig], hydra_overrides: list[str]) -> None:
        self.compose, self.hydra_overrides = compose, hydra_overrides
        self.parser = OverridesParser.create()
        self.bases: dict[tuple[str, ...], DictConfig] = {}

    @staticmethod
    def _chooses_a_group(override: Override) -> bool:
        key = override.key_or_group  # a group of conf/ or of the ConfigStore (algo: one option per registration)
        return (override.package is not None or "/" in key or (CONF_DIR / key).is_dir()
                or key in ConfigStore.instance().list(""))

    def __call__(self, job: list[str]) -> DictConfig:
        parsed = self.parser.parse_overrides(job)
        groups = tuple(o.input_line for o in parsed if self._chooses_a_group(o))
        if groups not in self.bases:
            self.bases[groups] = self.compose(config_name="config", overrides=[*groups, *self.hydra_overrides],
                                              return_hydra_config=True)
        cfg = copy.deepcopy(self.bases[groups])
        ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if not self._chooses_a_group(o)], cfg)
        return cfg

def check_launcher(cfg: DictConfig) -> None:
    """Launcher settings that cannot work as meant: a Ray address with the local Ray launcher (which
    starts its own Ray, sized by object_store_memory), and a SLURM warning signal that would come
    as soon as the job starts."""
    launcher = OmegaConf.select(cfg, "hydra.launcher") or {}
    target = str(launcher.get("_target_", ""))
    if "RayLauncher" in target:
        init = OmegaConf.select(cfg, "hydra.launcher.ray.init") or {}
        address = init.get("address")
        # ray_cluster sets object_store_memory: null; the plain launcher passes its own default size
        if address not in (None, "", "local") and "object_store_memory" not in init:
            raise ConfigError(f"hydra.launcher.ray.init.address={address} connects to a running Ray cluster: use "
                              f"hydra/launcher=ray_cluster (the plain ray launcher starts a Ray of its own)")
    timeout_min, delay = launcher.get("timeout_min"), launcher.get("signal_delay_s")
    if "Slurm" in target and timeout_min is not None and delay is not None and delay >= 60 * timeout_min:
        print(f"rlrun: note: hydra.launcher.signal_delay_s={delay} is not shorter than "
              f"hydra.launcher.timeout_min={timeout_min} minutes: SLURM sends its warning as soon as each job "
              f"starts, so the jobs stop, save and are requeued at once; lower signal_delay_s", file=sys.stderr)

def check_sweeper_direction(cfg: DictConfig) -> None:
    """An Optuna study must optimise the objective the right way (its default is minimize)."""
    sweeper = OmegaConf.select(cfg, "hydra.sweeper") or {}
    if "optuna" not in str(sweeper.get("_target_", "")).lower():
        return
    direction = sweeper.get("direction")
    direction = direction if isinstance(direction, str) else getattr(direction, "name", direction)
    wanted = OBJECTIVES[cfg.objective]
    if str(direction) != wanted:
        raise ConfigError(f"hydra.sweeper.direction={direction}, but objective={cfg.objective} is better "
                          f"{'larger' if wanted == 'maximize' else 'smaller'}: set hydra.sweeper.direction={wanted}")

def check_memory(cfg: DictConfig, observation_space: Any) -> None:
    """Refuse, with the figures, a run whose rollout buffer and networks alone would need more than
    this machine's memory (estimated before anything is allocated: float32 observations kept twice,
    the batch and its buffer; each MLP's weights, gradients and two optimiser moments)."""
    from rlrun.observations import obs_dim

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    rollout = 2 * 4 * cfg.algo.n_steps * cfg.env.num_envs * obs_dim(observation_space)
    sizes = [obs_dim(observation_space), *cfg.algo.hidden_sizes]
    weights = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    networks = 2 * 4 * 4 * weights  # actor and critic; weights, gradients, two moments; float32
    if rollout + networks > 0.9 * total:
        gb = lambda n: f"{n / 2**30:.1f} GB"  # noqa: E731
        raise ConfigError(f"the run would need about {gb(rollout + networks)} (rollout buffer algo.n_steps x "
                          f"env.num_envs x {obs_dim(observation_space)} observation floats: {gb(rollout)}; networks "
                          f"algo.hidden_sizes={list(cfg.algo.hidden_sizes)}: {gb(networks)}), more than this "
                          f"machine's {gb(total)}")

def check_device(device: str) -> None:
    """The device exists on this machine (importing torch, which the run needs next anyway)."""
    if device == "cuda":
        from rlrun.process_setup import resolve_device

        resolve_device(device)

def check_resume(cfg: DictConfig) -> None:
    """The checkpoint loads and its config agrees with this command's (before Hydra writes anything)."""
    from rlrun.checkpoint import hold_run_dir, load_checkpoint

    check_no_links(Path(cfg.resume))
    try:  # not while another process runs or resumes it; held from here on, before Hydra writes there
        hold_run_dir(Path(cfg.resume))
        checkpoint = load_checkpoint(Path(cfg.resume) / "checkpoints" / "last.pt")
    except RlrunError as err:
        raise ConfigError(str(err)) from None
    check_resume_agrees(checkpoint["config"], OmegaConf.to_container(cfg, resolve=False), cfg.resume)

def overshoot_note(cfg: DictConfig) -> str | None:
    """The run collects whole iterations of n_steps x num_envs env steps, so it can do more than
    total_steps; said before it starts when one iteration alone is larger."""
    batch = cfg.algo.n_steps * cfg.env.num_envs
    if batch <= cfg.total_steps:
        return None
    return (f"one iteration is algo.n_steps x env.num_envs = {cfg.algo.n_steps} x {cfg.env.num_envs} = {batch} "
            f"env steps, more than total_steps={cfg.total_steps}: the run does 1 iteration ({batch} steps)")
