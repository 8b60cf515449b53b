"""The ``rlrun`` console script: Hydra composes the config, then the trainer runs it.

torch and gymnasium are imported inside the task function, so ``rlrun --help``,
``rlrun --cfg job`` and config errors answer without paying for them.
"""

from __future__ import annotations

import logging
import re
import sys
from importlib.resources import files
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rlrun.config import ConfigError, EnvConfig, register_configs, validate



def _conf_dir() -> Path:
    """The installed ``rlrun.conf`` package (the repository's top-level ``conf/``)."""
    try:
        return Path(str(files("rlrun.conf")))
    except ModuleNotFoundError:  # imported from a source checkout that is not installed
        return Path(__file__).resolve().parent.parent / "conf"


CONF_DIR = _conf_dir()
log = logging.getLogger("rlrun")


def register_env_ids(argv: list[str]) -> None:
    """Let ``env=<any gymnasium id>`` work for ids that have no ``conf/env/<id>.yaml``.

    Each such id named on the command line gets a generic env config (the schema defaults,
    with ``id`` set) in the ``env`` group; whether gymnasium knows the id is checked when the
    run starts, with suggestions.
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


def _run(cfg: DictConfig) -> float | None:
    try:
        validate(cfg)
        from rlrun.envs import EnvError  # heavy imports (torch, gymnasium) only from here on
        from rlrun.trainer import train

        try:
            return train(cfg, Path(HydraConfig.get().runtime.output_dir))
        except EnvError as err:
            raise ConfigError(str(err)) from None
    except ConfigError as err:
        print(f"rlrun: error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    register_configs()
    register_env_ids(sys.argv[1:])
    hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(_run)()


if __name__ == "__main__":
    main()
