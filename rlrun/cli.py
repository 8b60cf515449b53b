"""The ``rlrun`` console script: check the command line, let Hydra compose, run the trainer.

Before Hydra creates any output directory, :func:`preflight` composes every job of the
command and checks it (types, ranges, env ids, spaces, a writable output dir), so bad input
gets one line on stderr and exit status 2, and leaves nothing behind. torch is imported only
inside the task function, so ``rlrun --help``, ``--cfg job`` and config errors answer at once.
"""

from __future__ import annotations

import copy
import difflib
import gc
import itertools
import logging
import os
import re
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Callable

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra._internal.config_loader_impl import ConfigLoaderImpl  # hydra-core 1.3 (pinned)
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from rlrun.checkpoint import resume_command
from rlrun.config import (CONF_DIR, JOB_DIR_DEPTH, NON_EXPERIMENT_KEYS, OBJECTIVES, ConfigError, EnvConfig,
                          check_resume_agrees, register_configs, validate)


log = logging.getLogger("rlrun")
TRUST_FLAG = "--trust-modules"  # rlrun's own flag: a resumed run may import the modules its config names
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p"}  # Hydra's flags whose value is the next argument
INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc"}


def register_env_ids(argv: list[str]) -> None:
    """Let ``env=<any gymnasium id>`` work for ids that have no ``conf/env/<id>.yaml``.

    Each such id named on the command line gets a generic env config (the schema defaults,
    with ``id`` set) in the ``env`` group; whether gymnasium knows the id is checked in preflight.
    """
    cs = ConfigStore.instance()
    for arg in argv:
        match = re.fullmatch(r"\+*env=(.+)", arg)
        if not match:
            continue
        for env_id in match.group(1).split(","):
            env_id = env_id.strip()
            if env_id and not (CONF_DIR / "env" / f"{env_id}.yaml").exists():
                namespace, _, name = env_id.rpartition("/")  # MinAtar/Asterix-v1: option Asterix-v1 of env/MinAtar
                cs.store(group="/".join(["env", *([namespace] if namespace else [])]), name=name, node=EnvConfig(id=env_id))


def hydra_quote(text: str) -> str:
    """``text`` as one quoted value of Hydra's override grammar, so that any path the OS allows
    (``=`` and ``,`` of sweep job names, spaces, quotes, backslashes, ``${``) reaches the config as it is."""
    text = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, text)  # backslashes before a quote or the end
    text = text.replace("'", "\\'").replace("${", "\\${")  # \${ : no interpolation for OmegaConf
    return f"'{text}'"


def _resume_path(value: str) -> Path:
    """The directory a ``resume=`` value names: as typed, or as Hydra would read it (quotes removed)."""
    path = Path(value).expanduser()
    if not path.exists():
        try:
            parsed = OverridesParser.create().parse_overrides([f"resume={value}"])[0].value()
            path = Path(str(parsed)).expanduser()
        except Exception:
            pass
    return path.resolve()


def expand_resume(argv: list[str], trust_modules: bool = False) -> list[str]:
    """``resume=<run dir>`` -> that run's own overrides, the user's others, and its directory as output.

    A sweep job resumes as a single run in its own directory (``hydra.mode=RUN``, even when its
    overrides name a sweep preset). The saved overrides are read as data: a run's own never set
    Hydra's keys, and a sweep's Hydra settings that name code to call (``_target_``, callbacks)
    need ``trust_modules``."""
    resume = [a for a in argv if a.startswith("resume=")]
    if not resume:
        return argv
    run_dir = _resume_path(resume[-1].split("=", 1)[1])
    if (run_dir / "multirun.yaml").is_file():
        return _expand_sweep_resume(run_dir, [a for a in argv if not a.startswith("resume=")], trust_modules)
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        raise ConfigError(f"resume={run_dir} is not an rlrun run directory (no .hydra/overrides.yaml)")
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise ConfigError(f"resume={run_dir} has no checkpoint to resume from (checkpoints/last.pt is missing)")
    try:
        saved = OmegaConf.load(overrides_file)
    except Exception as err:
        raise ConfigError(f"resume={run_dir}: {overrides_file} cannot be read ({_one_line(err)})") from None
    if not OmegaConf.is_list(saved):
        raise ConfigError(f"resume={run_dir}: {overrides_file} is not a list of overrides")
    original = [str(o) for o in saved if not str(o).startswith("resume=")]
    hydra_keys = [o for o in original if _override_key(o).startswith("hydra")]
    if hydra_keys:  # Hydra keeps its own overrides in hydra.yaml: this file was written by hand
        raise ConfigError(f"resume={run_dir}: {overrides_file} sets Hydra's {hydra_keys[0]!r}, which a run's "
                          f"overrides never do; refused")
    others = [a for a in argv if not a.startswith("resume=")]
    return [*original, *others, f"resume={hydra_quote(str(run_dir))}",
            f"hydra.run.dir={hydra_quote(str(run_dir))}", "hydra.mode=RUN"]


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _expand_sweep_resume(sweep_dir: Path, others: list[str], trust_modules: bool = False) -> list[str]:
    """``resume=<sweep dir>`` -> the sweep's own command into the same directory, with the user's
    other overrides (a launcher, say) in place of the saved ones: each job then continues from
    what it left there (rlrun.sweep_jobs.earlier_attempt), and completed jobs are not run again."""
    try:
        saved = OmegaConf.load(sweep_dir / "multirun.yaml").hydra
        task, hydra_saved, sweeper = list(saved.overrides.task), list(saved.overrides.hydra), saved.sweeper._target_
    except Exception as err:
        raise ConfigError(f"resume={sweep_dir}: multirun.yaml cannot be read ({_one_line(err)})") from None
    if "optuna" in str(sweeper).lower():
        raise ConfigError(f"resume={sweep_dir} is an Optuna study: it continues from its storage; rerun its "
                          f"command with the same hydra.sweeper.storage and study_name")
    if (sweep_dir / "multirun.yaml").is_symlink():
        raise ConfigError(f"{sweep_dir / 'multirun.yaml'} is a symbolic link; rlrun does not write through links: remove it")
    for level in range(1, JOB_DIR_DEPTH + 1):  # <algo>/<env>/<job>: no link at any level
        for path in sweep_dir.glob("/".join(["*"] * level)):
            if path.is_symlink():
                raise ConfigError(f"{path} is a symbolic link; rlrun does not write through links in a sweep folder: "
                                  f"remove it")
            if level == JOB_DIR_DEPTH and path.is_dir():
                check_no_links(path)
    hydra_saved = [str(o) for o in hydra_saved if _override_key(str(o)) not in ("hydra.sweep.dir", "hydra.mode")]
    calls = [o for o in hydra_saved if "_target_" in o or "callbacks" in _override_key(o)]
    if calls and not trust_modules:
        raise ConfigError(f"resume={sweep_dir}: multirun.yaml sets {calls[0]!r}, which names code for Hydra to call; "
                          f"if you trust where the sweep came from, add {TRUST_FLAG}")
    flags = [a for a in others if a.startswith("-")]  # Hydra's argparse wants them before the overrides
    others = [a for a in others if not a.startswith("-")]
    replaced = {_override_key(a) for a in others}
    kept = [str(o) for o in [*task, *hydra_saved] if _override_key(str(o)) not in replaced]
    multirun = [] if {"-m", "--multirun"} & set(flags) else ["-m"]
    return [*multirun, *flags, *kept, *others, f"hydra.sweep.dir={hydra_quote(str(sweep_dir))}"]


# Hydra's launcher and sweeper options that come from a plugin, and the extra that installs it.
PLUGIN_EXTRAS = {"launcher": {"joblib": "joblib", "ray": "ray", "ray_aws": "ray", "ray_local": "ray",
                              "ray_cluster": "ray", "submitit_slurm": "slurm", "submitit_local": "slurm"},
                 "sweeper": {"optuna": "optuna"}}


def _explain(err: Exception) -> str:
    """One line for a composition error: for a launcher or sweeper whose plugin is not installed,
    the command that installs it; otherwise Hydra's own message (:func:`_one_line`)."""
    missing = re.search(r"Could not find '/?hydra/(launcher|sweeper)/(\w+)'", str(err))
    extra = PLUGIN_EXTRAS.get(missing[1], {}).get(missing[2]) if missing else None
    if extra is None:
        return _one_line(err)
    return (f"hydra/{missing[1]}={missing[2]} needs Hydra's {extra} plugin, which is not installed: "
            f"pip install -e '.[{extra}]' in rlrun's checkout (pip install 'rlrun[{extra}]' from an index; "
            f"'.[sweep]' installs every launcher and sweeper)")


def _one_line(err: Exception) -> str:
    """Hydra / OmegaConf errors span several lines; keep the first line of each and the key."""
    parts = [str(err).strip().splitlines()[0].rstrip(".")]
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        parts.append(str(cause).strip().splitlines()[0])
    return ": ".join(parts)


def _check_algo(value: str) -> None:
    from rlrun.algos.registry import configs

    options = list(configs())
    if value not in options:
        close = difflib.get_close_matches(value, options, n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(f"algo={value!r} is not an algorithm{hint}; choose one of {', '.join(options)}")


def _jobs(overrides: list[str]) -> list[list[str]] | None:
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


class _JobComposer:
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


def _without_sweeps(overrides: list[str]) -> list[str]:
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [o.input_line for o in parsed if not o.is_sweep_override()]


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """The command line's overrides (flags and their values left out): the task's, and Hydra's own."""
    overrides = [a for i, a in enumerate(argv) if not a.startswith("-") and not (i and argv[i - 1] in VALUE_FLAGS)]
    task = [o for o in overrides if not o.startswith(("hydra.", "hydra/", "+hydra", "~hydra"))]
    return task, [o for o in overrides if o not in task]


def same_in_every_job(argv: list[str]) -> str | None:
    """The Hydra override that leaves out of the job folders' names (config.job_dir_name) the
    command line's overrides that every job of the sweep shares (``total_steps=50000`` beside
    ``seed=0,1,2``): the folders then differ only in what the sweep varies, and the shared values
    are in each job's ``.hydra/overrides.yaml`` and HParams. None when the command sets the
    exclusion itself or shares nothing."""
    task, hydra_overrides = split_overrides(argv)
    if any(_override_key(o) == "hydra.job.config.override_dirname.exclude_keys" for o in hydra_overrides):
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(task)
    except Exception:
        return None  # the checks before have reported it
    shared = [o.get_key_element() for o in parsed if not o.is_sweep_override()
              and o.get_key_element().lstrip("+~") not in NON_EXPERIMENT_KEYS]
    if not shared:
        return None
    keys = [*NON_EXPERIMENT_KEYS, *shared]
    return "hydra.job.config.override_dirname.exclude_keys=[" + ",".join(f"'{k}'" for k in keys) + "]"


def _check_launcher(cfg: DictConfig) -> None:
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


def _check_sweeper_direction(cfg: DictConfig) -> None:
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


def _writable_root(key: str, path: str) -> None:
    """Try to make (and remove) a directory where the run's output would go; check its name's length."""
    target = p = Path(path).expanduser().absolute()
    while not os.path.isdir(p):  # False, not an error, for a name too long to look up
        p = p.parent
    name_max, path_max = os.pathconf(p, "PC_NAME_MAX"), os.pathconf(p, "PC_PATH_MAX")
    too_long = [part for part in target.parts if len(part.encode()) > name_max]
    if too_long or len(str(target).encode()) >= path_max:
        what = f"a name of {len(too_long[0].encode())} bytes" if too_long else f"{len(str(target).encode())} bytes"
        shown = path if len(path) <= 60 else f"{path[:60]}..."
        raise ConfigError(f"{key}={shown} is too long ({what}; the file system allows {name_max} per name, "
                          f"{path_max} in all)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rlrun-check-", dir=p))
    except OSError as err:
        raise ConfigError(f"{key}={path} cannot be written ({err.strerror}); choose another directory") from None


def _check_unused_run_dir(path: str) -> None:
    """A new run never writes into a directory that holds another run (its summary, checkpoints or
    event files, also those of a run still going): that would overwrite it and mix two logs."""
    if not str(path).strip():
        raise ConfigError("hydra.run.dir is empty: name a directory for the run (the default is under outputs/)")
    run_dir = Path(path).expanduser()
    used = run_dir.is_dir() and ((run_dir / "summary.json").exists() or (run_dir / "checkpoints").exists()
                                 or any(run_dir.glob("events.out.tfevents.*")))
    if used:
        raise ConfigError(f"hydra.run.dir={path} already holds a run: continue it with {resume_command(run_dir)}, "
                          f"or choose another directory")


def _check_memory(cfg: DictConfig, observation_space: Any) -> None:
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


# What rlrun and Hydra write into a run folder by opening it (atomic renames replace a link instead).
WRITTEN_IN_PLACE = ("rlrun.log", "eval.json", ".rlrun.lock", ".hydra", ".hydra/config.yaml", ".hydra/hydra.yaml",
                    ".hydra/overrides.yaml", "checkpoints")


def check_no_links(run_dir: Path) -> None:
    """No file that a run writes in place is a symbolic link planted in its folder (it would be
    overwritten or appended to wherever it points)."""
    for name in WRITTEN_IN_PLACE:
        if (run_dir / name).is_symlink():
            raise ConfigError(f"{run_dir / name} is a symbolic link; rlrun does not write through links in a run "
                              f"folder: remove it")


def _hold(run_dir: Path) -> None:
    """This process takes the run directory's lock before Hydra writes its ``.hydra/`` there, so a
    second run into a directory whose first run is still setting up changes nothing in it."""
    from rlrun.checkpoint import RunDirInUse, hold_run_dir

    try:
        hold_run_dir(run_dir)
    except RunDirInUse as err:
        raise ConfigError(str(err)) from None


def _check_device(device: str) -> None:
    """The device exists on this machine (importing torch, which the run needs next anyway)."""
    if device == "cuda":
        from rlrun.runtime import resolve_device

        resolve_device(device)


def _check_resume(cfg: DictConfig) -> None:
    """The checkpoint loads and its config agrees with this command's (before Hydra writes anything)."""
    from rlrun.checkpoint import CheckpointError, RunDirInUse, hold_run_dir, load_checkpoint

    check_no_links(Path(cfg.resume))
    try:  # not while another process runs or resumes it; held from here on, before Hydra writes there
        hold_run_dir(Path(cfg.resume))
        checkpoint = load_checkpoint(Path(cfg.resume) / "checkpoints" / "last.pt")
    except (CheckpointError, RunDirInUse) as err:
        raise ConfigError(str(err)) from None
    check_resume_agrees(checkpoint["config"], OmegaConf.to_container(cfg, resolve=False), cfg.resume)


def _of_job(message: str, number: int, job: list[str], n_jobs: int) -> str:
    """A preflight error, naming the sweep job it belongs to when there is more than one."""
    return message if n_jobs == 1 else f"job {number:03d} ({' '.join(job)}): {message}"


def preflight(argv: list[str], resuming: bool = False, trust_modules: bool = False,
              config_only: bool = False) -> str | None:
    """Compose and check each job the command would run; raise ConfigError with one line.
    Returns a sweep's directory, resolved and absolute (None for a single run). ``resuming``: the
    config came from a run or sweep directory, so the modules its env names need ``trust_modules``
    (or to be imported already)."""
    from hydra import compose, initialize_config_dir

    task, hydra_overrides = split_overrides(argv)
    for o in task:
        if o.startswith("algo=") and "," not in o:
            _check_algo(o.split("=", 1)[1])
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
            jobs = _jobs(task) if multirun else [task]
        except Exception as err:
            raise ConfigError(_explain(err)) from None
        register_env_ids(task)
        if jobs is not None:
            _check_distinct(jobs)
        if jobs is None:  # e.g. optuna ranges: the sweeper samples the jobs; check the fixed part here
            jobs = [_without_sweeps(task)]  # and the task checks each sampled job
        composed = _JobComposer(compose, hydra_overrides)
        sweep_dir = None
        for number, job in enumerate(jobs):
            try:
                cfg = first if first is not None else composed(job)
                validate(cfg)
                _check_sweeper_direction(cfg)
                if number == 0:
                    _check_launcher(cfg)
            except Exception as err:
                message = str(err) if isinstance(err, ConfigError) else _explain(err)
                raise ConfigError(_of_job(message, number, job, len(jobs))) from None
            if config_only:  # --cfg: the config's own checks, no env, no folder, no torch
                continue
            if cfg.resume:
                _check_resume(cfg)
            elif len(jobs) == 1:
                note = overshoot_note(cfg)
                if note:
                    print(f"rlrun: note: {note}", file=sys.stderr)
            from rlrun.envs import EnvError, check_env_id, check_spaces_of, consent_needed  # gymnasium: after the checks
            from rlrun.observations import check_encoder

            if resuming and not trust_modules:  # before anything is imported
                refusal = consent_needed(cfg.env, "the run's config", f"add {TRUST_FLAG}")
                if refusal:
                    raise ConfigError(_of_job(refusal, number, job, len(jobs)))

            if cfg.env.id not in observation_spaces:
                try:
                    check_env_id(cfg.env.id, cfg.env.register)
                    observation_spaces[cfg.env.id] = check_spaces_of(cfg.env)
                except EnvError as err:
                    raise ConfigError(str(err)) from None
            try:  # the encoder the job asks for against its env's observations
                check_encoder(cfg.algo, observation_spaces[cfg.env.id])
            except ValueError as err:
                raise ConfigError(_of_job(str(err), number, job, len(jobs))) from None
            output_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
            output_dir = OmegaConf.select(cfg, output_key)
            _writable_root(output_key, output_dir)
            if multirun and sweep_dir is None:
                sweep_dir = str(Path(output_dir).expanduser().absolute())
            if not multirun:  # a sweep's jobs may run elsewhere (SLURM's GPU nodes): they check their own
                _check_device(cfg.device)
                _check_memory(cfg, observation_spaces[cfg.env.id])
                cores = os.cpu_count() or 1
                if cfg.torch_threads > cores:
                    raise ConfigError(f"torch_threads={cfg.torch_threads} is not allowed: this machine has {cores} "
                                      f"cores (more threads than cores only slow torch down; 1 is fastest for small MLPs)")
                if not cfg.resume:
                    _check_unused_run_dir(OmegaConf.select(cfg, "hydra.run.dir"))
                    if any(_override_key(o) == "hydra.run.dir" for o in hydra_overrides):
                        check_no_links(Path(OmegaConf.select(cfg, "hydra.run.dir")).expanduser())
                        _hold(Path(OmegaConf.select(cfg, "hydra.run.dir")).expanduser())
    return sweep_dir


def _check_distinct(jobs: list[list[str]]) -> None:
    """Two jobs of a sweep with the same overrides would be one run in one directory
    (config.job_dir_name): refused, naming them."""
    seen: dict[frozenset[str], int] = {}
    for number, job in enumerate(jobs):
        key = frozenset(job)
        if key in seen:
            raise ConfigError(f"jobs {seen[key]:03d} and {number:03d} of the sweep are the same run ({' '.join(job)}): "
                              f"a value is repeated; list each value once")
        seen[key] = number


def overshoot_note(cfg: DictConfig) -> str | None:
    """The run collects whole iterations of n_steps x num_envs env steps, so it can do more than
    total_steps; said before it starts when one iteration alone is larger."""
    batch = cfg.algo.n_steps * cfg.env.num_envs
    if batch <= cfg.total_steps:
        return None
    return (f"one iteration is algo.n_steps x env.num_envs = {cfg.algo.n_steps} x {cfg.env.num_envs} = {batch} "
            f"env steps, more than total_steps={cfg.total_steps}: the run does 1 iteration ({batch} steps)")


def _run(cfg: DictConfig) -> float | None:
    from rlrun import slurm
    from rlrun.checkpoint import CheckpointError, OutputError, RunDirInUse, lock_run_dir
    from rlrun.envs import EnvError
    from rlrun.signals import Interrupted
    from rlrun.errors import NumericalError
    from rlrun.sweep_jobs import sweep_stopping
    from rlrun.summary import objective_value
    from rlrun.trainer import train

    if not gc.get_freeze_count():
        # What is imported by now (torch alone is over 100,000 objects) lives as long as the process:
        # kept out of every later garbage collection, the ones at exit included. Once per process,
        # so that a sweep worker's later jobs do not freeze an earlier job's garbage.
        gc.freeze()
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overridden = [_override_key(o) for o in hydra_cfg.overrides.task]  # the HParams table shows them
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        validate(cfg)
        if multirun:
            slurm.name_job(f"rlrun_{cfg.algo.name}_{cfg.env.id}_seed{cfg.seed}")  # squeue shows the run
            if sweep_stopping(run_dir):
                log.warning("not started: the sweep was stopped")
                return float("nan")
            with lock_run_dir(run_dir):  # before looking at, or clearing, what an earlier attempt left
                previous = _continue_earlier_attempt(cfg, run_dir)
                if previous is not None:
                    return previous
                return objective_value(train(cfg, run_dir, multirun=True, overridden=overridden), cfg.objective)
        return objective_value(train(cfg, run_dir, multirun=False, overridden=overridden), cfg.objective)
    except (ConfigError, EnvError, CheckpointError, NumericalError, OutputError, RunDirInUse) as err:
        if multirun:  # fail this job only: the others go on, and sweep_jobs names it at the end
            log.error("job failed: %s", err)
            return float("nan")
        print(f"rlrun: error: {err}", file=sys.stderr)
        sys.exit(3 if isinstance(err, NumericalError) else 1 if isinstance(err, OutputError) else 2)
    except Interrupted:
        # scancel'd (a pre-emption waits to be requeued instead), or a stopped sweep's worker: a
        # result for the driver, which then names the job as interrupted
        if multirun and (slurm.in_job() or sweep_stopping(run_dir)):
            return float("nan")
        raise  # Ctrl-C on a sweep stops the sweep, not only this job
    except Exception as err:
        if not multirun:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise  # Hydra prints the whole traceback
            print(f"rlrun: error: crashed: {type(err).__name__}: {_one_line(err)} "
                  f"(traceback in {run_dir / 'rlrun.log'})", file=sys.stderr)
            sys.exit(1)
        log.error("job crashed: %s: %s (traceback in %s)", type(err).__name__, err, run_dir / "rlrun.log")
        return float("nan")


def _continue_earlier_attempt(cfg: DictConfig, run_dir: Path) -> float | None:
    """A sweep job whose directory holds an earlier attempt of itself (requeued, pre-empted,
    resumed with ``rlrun -m resume=<sweep dir>``): its objective if that attempt completed;
    otherwise None, after setting ``resume`` to continue from its checkpoint or clearing the files
    of an attempt that died before its first one."""
    from rlrun.sweep_jobs import clear_dead_attempt, earlier_attempt
    from rlrun.summary import objective_value

    state, summary = earlier_attempt(run_dir)
    if state == "completed":
        log.info("%s already completed (%d env steps); not run again", run_dir, summary["steps_done"])
        return objective_value(summary, cfg.objective)
    if state == "resumable":
        with open_dict(cfg):
            cfg.resume = str(run_dir)
    elif state == "dead":
        clear_dead_attempt(run_dir)
    return None


def help_text() -> str:
    """rlrun's ``--help`` page: the template of Hydra's help config ``conf/hydra/help/rlrun.yaml``
    (which Hydra itself would print too), filled here without composing the config, because
    Hydra's help lists every config group first (seconds) and shows internal ones."""
    from rlrun.algos.registry import catalogue

    algos = catalogue()
    default = OmegaConf.load(CONF_DIR / "config.yaml").defaults[2]["algo"]
    OmegaConf.register_new_resolver("rlrun_algorithms", lambda: ", ".join(
        f"{name} (default)" if name == default else name for name in algos), replace=True)
    width = max(map(len, algos)) + 2
    lines = []
    for name, (summary, knobs) in algos.items():
        lines.append(f"  {name:<{width}}{summary}")
        lines += [f"  {'':<{width}}{row}" for row in textwrap.wrap(" ".join(knobs), 94 - width, break_on_hyphens=False)]
    OmegaConf.register_new_resolver("rlrun_knobs", lambda: "\n".join(lines), replace=True)
    help_cfg = OmegaConf.create({"hydra": {"help": OmegaConf.load(CONF_DIR / "hydra" / "help" / "rlrun.yaml")}})
    return help_cfg.hydra.help.template


def use_ray_token(argv: list[str]) -> None:
    """Ray 2.59+ heads started by `ray start` require token authentication, but a client that
    connects to one only sends its token with RAY_AUTH_MODE=token: set it for Ray launchers when
    this machine has a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)."""
    if not any(a.startswith("hydra/launcher=ray") for a in argv) or "RAY_AUTH_MODE" in os.environ:
        return
    if (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"


# Hydra's flags that would swap rlrun's config for another, which rlrun's checks do not know.
OWN_CONFIG_FLAGS = ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--experimental-rerun")
COMPLETION_FLAGS = ("--shell-completion", "-sc")


def _check_flags(argv: list[str]) -> None:
    """Flags rlrun does not take, and the shell-completion flag without its subcommand, in one line."""
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in OWN_CONFIG_FLAGS:
            raise ConfigError(f"{flag} is not supported: rlrun composes its own config (conf/); set keys with "
                              f"overrides (algo.gamma=0.99) or a preset (+sweep=<name>)")
    if any(a in COMPLETION_FLAGS for a in argv) and not any(
            a.split("=", 1)[0] in ("install", "uninstall", "query") for a in argv):
        raise ConfigError("--shell-completion needs install=bash|zsh|fish, uninstall=bash|zsh|fish or query=<line>")
    modes = [flag for flag in ("--cfg", "-m", "--multirun", "--info", "--shell-completion") if flag in argv]
    if len(modes) > 1:  # Hydra runs one mode at a time (and raises otherwise)
        raise ConfigError(f"{modes[0]} and {modes[1]} cannot be combined: Hydra does one of them at a time")
    tuned = [a.split("=", 1)[1] for a in argv if a.startswith("tuned=")]
    if tuned and tuned[-1] not in ("none", "null") and not (CONF_DIR / "tuned" / f"{tuned[-1]}.yaml").is_file():
        choices = sorted(str(p.relative_to(CONF_DIR / "tuned").with_suffix("")) for p in (CONF_DIR / "tuned").rglob("*.yaml"))
        close = difflib.get_close_matches(tuned[-1], choices, n=3)
        raise ConfigError(f"tuned={tuned[-1]} is not allowed: tuned=none, or a file conf/tuned/<algo>/<env>.yaml"
                          + (f" (did you mean {', '.join(close)}?)" if close else ""))


def env_id_as_env(argv: list[str]) -> list[str]:
    """``env.id=<id>`` without ``env=`` would keep the default env file's settings and its tuned
    file (CartPole-v1's n_steps and 8 envs for Acrobot): read it as ``env=<id>``, that id's own
    env file (or generic defaults) and tuned file, and say so. With ``env=`` (keep that file's
    settings under another id) or ``resume=`` (the run's own overrides) it stays as it is."""
    if any(re.match(r"\+*(env|resume)=", a) for a in argv):
        return argv
    out = []
    for arg in argv:
        if arg.startswith("env.id="):
            value = arg.split("=", 1)[1]
            print(f"rlrun: note: {arg} without env=: read as env={value} (its own env settings and tuned file, "
                  f"not the default env's); env=<other> {arg} keeps another env file's settings", file=sys.stderr)
            arg = f"env={value}"
        out.append(arg)
    return out


def main() -> None:
    argv = sys.argv[1:]
    if {"--help", "-h"} & set(argv):
        print(help_text())
        return
    trust_modules = TRUST_FLAG in argv
    argv = [a for a in argv if a != TRUST_FLAG]
    resuming = any(a.startswith("resume=") for a in argv)
    register_configs()
    try:
        _check_flags(argv)
        argv = expand_resume(env_id_as_env(argv), trust_modules)
        register_env_ids(argv)
        if {"--cfg", "-c"} & set(argv) and not {"--help", "-h", "--hydra-help"} & set(argv):
            preflight(argv, config_only=True)  # what it prints is a config that would run
        elif not INFO_FLAGS & set(argv) and not os.environ.get("RLRUN_SKIP_PREFLIGHT"):
            sweep_dir = preflight(argv, resuming, trust_modules)
            if sweep_dir is not None:
                # One absolute path for every job, wherever a launcher runs it: a Ray worker's
                # working directory is where `ray start` ran, and ${now:} would be read again there.
                argv.append(f"hydra.sweep.dir={hydra_quote(sweep_dir)}")
                exclusion = same_in_every_job(argv)
                if exclusion is not None:
                    argv.append(exclusion)
    except ConfigError as err:
        print(f"rlrun: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # the preflight builds each env once, which can take seconds (Atari, async)
        print("rlrun: interrupted before the run started; nothing was written", file=sys.stderr)
        sys.exit(130)
    use_ray_token(argv)
    sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(_run)()


if __name__ == "__main__":
    main()
