"""The ``rlrun`` console script: check the command line, let Hydra compose, run the trainer.

Before Hydra creates any output directory, :func:`rlrun.launch.checks.preflight` composes every
job of the command and checks it, so bad input gets one line on stderr and exit status 2, and
leaves nothing behind. torch is imported only inside the task function, so ``rlrun --help``,
``--cfg job`` and config errors answer at once.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from dataclasses import MISSING, fields

import hydra
from omegaconf import OmegaConf

from rlrun.config import CONF_DIR, Config, EnvConfig, default_choice, register_configs
from rlrun.errors import RlrunError
from rlrun.launch.arguments import (INFO_FLAGS, TRUST_FLAG, check_flags, env_id_as_env, expand_resume, hydra_quote,
                                    register_env_ids, same_in_every_job, tuned_zoo, use_ray_token)
from rlrun.launch.batched import forks_groups, start_group_server
from rlrun.launch.batched import register as register_batched_launcher
from rlrun.launch.checks import preflight, skip_checked_jobs
from rlrun.launch.task import run_task

def help_text() -> str:
    """rlrun's ``--help`` page: the template of Hydra's help config ``conf/hydra/help/rlrun.yaml``
    (which Hydra itself would print too), filled here without composing the config, because
    Hydra's help lists every config group first (seconds) and shows internal ones."""
    from rlrun.algos.registry import catalogue


    algos = catalogue()
    default = default_choice("algo")
    OmegaConf.register_new_resolver("rlrun_algorithms", lambda: ", ".join(
        f"{name} (default)" if name == default else name for name in algos), replace=True)
    width = max(map(len, algos)) + 2
    lines = []
    for name, (summary, knobs) in algos.items():
        lines.append(f"  {name:<{width}}{summary}")
        lines += [f"  {'':<{width}}{row}" for row in textwrap.wrap(" ".join(knobs), 94 - width, break_on_hyphens=False)]
    OmegaConf.register_new_resolver("rlrun_knobs", lambda: "\n".join(lines), replace=True)
    OmegaConf.register_new_resolver("rlrun_run_keys", lambda: "\n".join(run_keys()), replace=True)
    help_cfg = OmegaConf.create({"hydra": {"help": OmegaConf.load(CONF_DIR / "hydra" / "help" / "rlrun.yaml")}})
    return help_cfg.hydra.help.template


def run_keys() -> list[str]:
    """``key=default  doc`` of each knob of the run and the env (their config dataclasses, the one
    source), wrapped for the help page."""
    rows = []
    for prefix, schema in (("", Config), ("env.", EnvConfig)):
        for f in fields(schema):
            if "doc" not in f.metadata or f.name in ("tuned_file", "kwargs", "register", "wrappers"):
                continue
            default = f.default_factory() if f.default is MISSING else f.default
            shown = "null" if default is None else str(default).lower() if isinstance(default, bool) else default
            key = f"{prefix}{f.name}={shown}"
            text = textwrap.wrap(f.metadata["doc"], 94 - 27, break_on_hyphens=False)
            rows += [f"    {key:<25}{text[0]}"] if len(key) < 25 else [f"    {key}", f"    {'':<25}{text[0]}"]
            rows += [f"    {'':<25}{line}" for line in text[1:]]
    return rows


def main() -> None:
    argv = sys.argv[1:]
    if {"--help", "-h"} & set(argv):
        print(help_text())
        return
    trust_modules = TRUST_FLAG in argv
    argv = [a for a in argv if a != TRUST_FLAG]
    resuming = any(a.startswith("resume=") for a in argv)
    register_configs()
    register_batched_launcher()
    try:
        check_flags(argv)
        argv = expand_resume(tuned_zoo(env_id_as_env(argv)), trust_modules)
        register_env_ids(argv)
        if forks_groups(argv) and not INFO_FLAGS & set(argv):
            start_group_server()  # its imports run beside the preflight
        if {"--cfg", "-c"} & set(argv) and not {"--help", "-h", "--hydra-help"} & set(argv):
            preflight(argv, config_only=True)  # what it prints is a config that would run
        elif not INFO_FLAGS & set(argv) and not os.environ.get("RLRUN_SKIP_PREFLIGHT"):
            sweep_dir, checked_jobs = preflight(argv, resuming, trust_modules)
            if sweep_dir is not None:
                skip_checked_jobs(checked_jobs)
                # One absolute path for every job, wherever a launcher runs it: a Ray worker's
                # working directory is where `ray start` ran, and ${now:} would be read again there.
                argv.append(f"hydra.sweep.dir={hydra_quote(sweep_dir)}")
                exclusion = same_in_every_job(argv)
                if exclusion is not None:
                    argv.append(exclusion)
    except RlrunError as err:
        print(f"rlrun: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:  # the preflight builds each env once, which can take seconds (Atari, async)
        print("rlrun: interrupted before the run started; nothing was written", file=sys.stderr)
        sys.exit(130)
    use_ray_token(argv)
    sys.argv = [sys.argv[0], *argv]
    # until a run, a sweep or a launcher sets handlers of its own (and after, where one steps aside)
    previous = {sig: signal.signal(sig, quit_at_once) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(run_task)()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def quit_at_once(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM while Hydra composes the config, before any run has started: nothing to
    save, so exit at once with one line. (A KeyboardInterrupt raised inside OmegaConf's merges can
    surface as an unrelated config error.) Also the sweep's second Ctrl-C, which the failed-jobs
    report hands back here."""
    sys.stdout.flush()
    print("rlrun: interrupted", file=sys.stderr, flush=True)
    os._exit(128 + signum)


if __name__ == "__main__":
    main()
