"""The ``rlrun`` console script: check the command line, let Hydra compose, run the trainer.

Before Hydra creates any output directory, :func:`preflight` composes every job of the
command and checks it (types, ranges, env ids, spaces, a writable output dir), so bad input
gets one line on stderr and exit status 2, and leaves nothing behind. torch is imported only
inside the task function, so ``rlrun --help``, ``--cfg job`` and config errors answer at once.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rlrun.config import ConfigError, EnvConfig, config_differences, register_configs, validate


def _conf_dir() -> Path:
    """The installed ``rlrun.conf`` package (the repository's top-level ``conf/``)."""
    try:
        return Path(str(files("rlrun.conf")))
    except ModuleNotFoundError:  # imported from a source checkout that is not installed
        return Path(__file__).resolve().parent.parent / "conf"


CONF_DIR = _conf_dir()
INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc"}
MAX_PREFLIGHT_JOBS = 256


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
                cs.store(group="env", name=env_id, node=EnvConfig(id=env_id))


def expand_resume(argv: list[str]) -> list[str]:
    """``resume=<run dir>`` -> that run's own overrides, the user's others, and its directory as output."""
    resume = [a for a in argv if a.startswith("resume=")]
    if not resume:
        return argv
    run_dir = Path(resume[-1].split("=", 1)[1]).expanduser().resolve()
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        raise ConfigError(f"resume={run_dir} is not an rlrun run directory (no .hydra/overrides.yaml)")
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise ConfigError(f"resume={run_dir} has no checkpoint to resume from (checkpoints/last.pt is missing)")
    original = [o for o in OmegaConf.load(overrides_file) if not str(o).startswith("resume=")]
    others = [a for a in argv if not a.startswith("resume=")]
    return [*map(str, original), *others, f"resume={run_dir}", f"hydra.run.dir={run_dir}"]


def _one_line(err: Exception) -> str:
    """Hydra / OmegaConf errors span several lines; keep the first line of each and the key."""
    parts = [str(err).strip().splitlines()[0].rstrip(".")]
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        parts.append(str(cause).strip().splitlines()[0])
    return ": ".join(parts)


def _check_algo(value: str) -> None:
    options = sorted(p.stem for p in (CONF_DIR / "algo").glob("*.yaml"))
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
    return [list(job) for job in itertools.islice(itertools.product(*axes), MAX_PREFLIGHT_JOBS)]


def _writable_root(path: str) -> None:
    """Try to make (and remove) a directory where the run's output would go."""
    p = Path(path).expanduser().resolve()
    while not p.exists():
        p = p.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rlrun-check-", dir=p))
    except OSError as err:
        raise ConfigError(f"output directory {path} cannot be written ({err.strerror}); set hydra.run.dir") from None


def _check_unused_run_dir(path: str) -> None:
    """A new run never writes into a directory that holds another run (its summary, checkpoints or
    event files, also those of a run still going): that would overwrite it and mix two logs."""
    if not str(path).strip():
        raise ConfigError("hydra.run.dir is empty: name a directory for the run (the default is under outputs/)")
    run_dir = Path(path).expanduser()
    used = run_dir.is_dir() and ((run_dir / "summary.json").exists() or (run_dir / "checkpoints").exists()
                                 or any(run_dir.glob("events.out.tfevents.*")))
    if used:
        raise ConfigError(f"hydra.run.dir={path} already holds a run: continue it with rlrun resume={path}, "
                          f"or choose another directory")


def _check_resume(cfg: DictConfig) -> None:
    """The checkpoint loads and its config agrees with this command's (before Hydra writes anything)."""
    from rlrun.checkpoint import CheckpointError, load_checkpoint

    try:
        checkpoint = load_checkpoint(Path(cfg.resume) / "checkpoints" / "last.pt")
    except CheckpointError as err:
        raise ConfigError(str(err)) from None
    task = OmegaConf.to_container(cfg, resolve=False)
    task.pop("hydra", None)
    diffs = config_differences(checkpoint["config"], task)
    if diffs:
        raise ConfigError(f"resume={cfg.resume} conflicts with its checkpoint: {'; '.join(diffs)}")


def preflight(argv: list[str]) -> None:
    """Compose and check each job the command would run; raise ConfigError with one line."""
    from hydra import compose, initialize_config_dir

    from rlrun.envs import EnvError, check_env_id, check_spaces_of

    overrides = [a for a in argv if not a.startswith("-")]
    task = [o for o in overrides if not o.startswith(("hydra.", "hydra/", "+hydra", "~hydra"))]
    hydra_overrides = [o for o in overrides if o not in task]
    for o in task:
        if o.startswith("algo=") and "," not in o:
            _check_algo(o.split("=", 1)[1])
    checked_envs: set[str] = set()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            multirun = any(a in ("-m", "--multirun") for a in argv)
            if not multirun:  # a preset may set hydra.mode: MULTIRUN and its sweep in hydra.sweeper.params
                first = compose(config_name="config", overrides=[o for o in task if "," not in o] + hydra_overrides,
                                return_hydra_config=True)
                multirun = first.hydra.mode == RunMode.MULTIRUN
                params = OmegaConf.select(first, "hydra.sweeper.params") or {}
                task = [f"{k}={v}" for k, v in params.items() if not any(o.startswith(f"{k}=") for o in task)] + task
            jobs = _jobs(task) if multirun else [task]
        except Exception as err:
            raise ConfigError(_one_line(err)) from None
        if jobs is None:  # e.g. optuna ranges: the sweeper samples the jobs; the task re-checks each
            return
        register_env_ids(task)
        for job in jobs:
            try:
                cfg = compose(config_name="config", overrides=job + hydra_overrides, return_hydra_config=True)
            except Exception as err:
                raise ConfigError(_one_line(err)) from None
            validate(cfg)
            if cfg.resume:
                _check_resume(cfg)
            elif len(jobs) == 1:
                note = overshoot_note(cfg)
                if note:
                    print(f"rlrun: note: {note}", file=sys.stderr)
            if cfg.env.id not in checked_envs:
                checked_envs.add(cfg.env.id)
                try:
                    check_env_id(cfg.env.id)
                    check_spaces_of(cfg.env)
                except EnvError as err:
                    raise ConfigError(str(err)) from None
            _writable_root(OmegaConf.select(cfg, "hydra.sweep.dir" if multirun else "hydra.run.dir"))
            if not multirun and not cfg.resume:
                _check_unused_run_dir(OmegaConf.select(cfg, "hydra.run.dir"))


def overshoot_note(cfg: DictConfig) -> str | None:
    """The run collects whole iterations of n_steps x num_envs env steps, so it can do more than
    total_steps; said before it starts when one iteration alone is larger."""
    batch = cfg.algo.n_steps * cfg.env.num_envs
    if batch <= cfg.total_steps:
        return None
    return (f"one iteration is algo.n_steps x env.num_envs = {cfg.algo.n_steps} x {cfg.env.num_envs} = {batch} "
            f"env steps, more than total_steps={cfg.total_steps}: the run does 1 iteration ({batch} steps)")


class JobFailed(RuntimeError):
    """One job of a multirun failed; its message is the one-line error."""


def _run(cfg: DictConfig) -> float | None:
    from rlrun.checkpoint import CheckpointError
    from rlrun.envs import EnvError
    from rlrun.errors import NumericalError
    from rlrun.trainer import train

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    # The command line's keys that define the experiment (those of the sweep directory's name):
    # the HParams table shows them.
    excluded = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    overridden = [key for key in (o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.task)
                  if key not in excluded]
    try:
        validate(cfg)
        return train(cfg, Path(hydra_cfg.runtime.output_dir), multirun=multirun, overridden=overridden)
    except (ConfigError, EnvError, CheckpointError, NumericalError) as err:
        if multirun:  # fail this job only: the launcher keeps the others and reports the failure
            raise JobFailed(str(err)) from None
        print(f"rlrun: error: {err}", file=sys.stderr)
        sys.exit(2 if not isinstance(err, NumericalError) else 3)


def help_text() -> str:
    """rlrun's ``--help`` page: the template of Hydra's help config ``conf/hydra/help/rlrun.yaml``
    (which Hydra itself would print too), filled here without composing the config, because
    Hydra's help lists every config group first (seconds) and shows internal ones."""
    help_cfg = OmegaConf.create({"hydra": {"help": OmegaConf.load(CONF_DIR / "hydra" / "help" / "rlrun.yaml")}})
    return help_cfg.hydra.help.template


def main() -> None:
    argv = sys.argv[1:]
    if {"--help", "-h"} & set(argv):
        print(help_text())
        return
    register_configs()
    try:
        argv = expand_resume(argv)
        register_env_ids(argv)
        if not INFO_FLAGS & set(argv) and not os.environ.get("RLRUN_SKIP_PREFLIGHT"):
            preflight(argv)
    except ConfigError as err:
        print(f"rlrun: error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *argv]
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(_run)()


if __name__ == "__main__":
    main()
