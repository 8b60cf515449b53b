"""The Python API: ``rlrun.train([...])`` runs one job in-process, composed and checked exactly as
the ``rlrun`` command line would, and returns its summary; ``rlrun.load(path)`` is in rlrun.policy.

    import rlrun
    summary = rlrun.train(["algo=trpo", "env=Pendulum-v1", "total_steps=50000"])
    policy = rlrun.load(summary["run_dir"])
    action = policy.act(obs)            # deterministic; policy.act(obs, deterministic=False) samples
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf, open_dict

log = logging.getLogger("rlrun")


def train(overrides: Sequence[str] = (), trust_modules: bool = False) -> dict:
    """Run one job with these command-line overrides (``"algo=trpo"``, ``"resume=<run dir>"``, ...)
    in this process, into the directory the command line would use; returns its summary.json
    (with ``run_dir`` added). Sweeps (``-m``, ``a,b`` values) are the command line's job.
    ``trust_modules``: with ``resume=``, import the modules the run's env config names (the command
    line's ``--trust-modules``); without it such a config is refused unless they are imported already.

    Raises ConfigError (bad input, one line, before anything is written), NumericalError (a
    non-finite value; the last good checkpoint is kept), OutputError, or KeyboardInterrupt after a
    Ctrl-C, once the checkpoint is saved (continue with ``resume=``).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from rlrun.checkpoint import release_run_dirs
    from rlrun.config import register_configs
    from rlrun.errors import ConfigError, one_line
    from rlrun.launch.arguments import env_id_as_env, expand_resume, register_env_ids, tuned_zoo

    if isinstance(overrides, (str, bytes, dict)) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"rlrun.train takes a list of override strings, e.g. rlrun.train([\"algo=trpo\", "
                          f"\"seed=1\"]), not {type(overrides).__name__} {overrides!r:.60}")
    argv = list(overrides)
    if any(a.startswith("-") for a in argv):
        raise ConfigError(f"{next(a for a in argv if a.startswith('-'))}: rlrun.train takes overrides only; "
                          f"sweeps and flags are the command line's (rlrun -m ...)")
    try:
        sweeps = [o.input_line for o in OverridesParser.create().parse_overrides(argv) if o.is_sweep_override()]
    except Exception as err:
        raise ConfigError(one_line(err)) from None
    if sweeps:
        raise ConfigError(f"{sweeps[0]} is a sweep: rlrun.train runs one job; sweeps are the command line's (rlrun -m)")
    register_configs()
    resuming = any(a.startswith("resume=") for a in argv)
    argv = expand_resume(tuned_zoo(env_id_as_env(argv)), trust_modules)
    register_env_ids(argv)
    try:
        return _train_checked(argv, resuming, trust_modules)
    finally:
        release_run_dirs()  # held since the checks (resume, an explicit hydra.run.dir)


def _train_checked(argv: list[str], resuming: bool, trust_modules: bool) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from rlrun.config import CONF_DIR, override_key, validate
    from rlrun.errors import ConfigError, Interrupted
    from rlrun.launch.checks import preflight
    from rlrun.trainer import train as run_training

    if preflight(argv, resuming, trust_modules).sweep_dir is not None:  # a preset that sets hydra.mode=MULTIRUN
        raise ConfigError(f"{' '.join(argv)} is a sweep: rlrun.train runs one job; use rlrun -m")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=argv, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${now:...} and ${hydra:...} in the run directory's name
    run_dir = Path(OmegaConf.select(cfg, "hydra.run.dir")).expanduser().absolute()
    with open_dict(cfg):
        del cfg["hydra"]
    validate(cfg)
    hydra_dir = run_dir / ".hydra"
    if not cfg.resume:  # the run's own overrides, as Hydra keeps them: what resume= reads
        hydra_dir.mkdir(parents=True, exist_ok=True)
        task = [a for a in argv if not a.startswith(("hydra.", "hydra/", "+hydra", "~hydra"))]
        OmegaConf.save(OmegaConf.create(task), hydra_dir / "overrides.yaml")
        OmegaConf.save(cfg, hydra_dir / "config.yaml")
    file_log = logging.FileHandler(run_dir / "rlrun.log")
    file_log.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    log.addHandler(file_log)
    previous_level = log.level
    log.setLevel(logging.INFO)
    try:
        summary = run_training(cfg, run_dir, overridden=[override_key(a) for a in argv])
    except Interrupted:
        raise KeyboardInterrupt(f"stopped and saved; continue with rlrun.train(['resume={run_dir}'])") from None
    finally:
        log.removeHandler(file_log)
        file_log.close()
        log.setLevel(previous_level)
    return {**summary, "run_dir": str(run_dir)}
