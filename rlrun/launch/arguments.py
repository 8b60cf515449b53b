"""The command line before Hydra sees it: rlrun's own flags, ``resume=`` expanded into the run's
or sweep's own overrides, ``env=<any gymnasium id>`` registered, and the overrides split into the
task's and Hydra's. Pure functions of the argument list; errors raise ConfigError, never exit.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from rlrun.config import CONF_DIR, JOB_DIR_DEPTH, NON_EXPERIMENT_KEYS, EnvConfig, default_choice, override_key
from rlrun.errors import ConfigError, one_line
from rlrun.launch.run_folders import check_no_links

TRUST_FLAG = "--trust-modules"  # rlrun's own flag: a resumed run may import the modules its config names
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p"}  # Hydra's flags whose value is the next argument
INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc"}
# Hydra's flags that would swap rlrun's config for another, which rlrun's checks do not know.
OWN_CONFIG_FLAGS = ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--experimental-rerun")
COMPLETION_FLAGS = ("--shell-completion", "-sc")


def check_flags(argv: list[str]) -> None:
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
    if tuned and tuned[-1] not in ("none", "null", ZOO) and not (CONF_DIR / "tuned" / f"{tuned[-1]}.yaml").is_file():
        choices = sorted(str(p.relative_to(CONF_DIR / "tuned").with_suffix("")) for p in (CONF_DIR / "tuned").rglob("*.yaml"))
        close = difflib.get_close_matches(tuned[-1], choices, n=3)
        raise ConfigError(f"tuned={tuned[-1]} is not allowed: tuned=none, tuned=zoo, or a file conf/tuned/<algo>/<env>.yaml"
                          + (f" (did you mean {', '.join(close)}?)" if close else ""))


ZOO = "zoo"  # tuned=zoo: conf/tuned/zoo/<algo>/<env>.yaml, rl-zoo's setting beside the shipped one


def tuned_zoo(argv: list[str]) -> list[str]:
    """``tuned=zoo`` -> ``tuned=zoo/<algo>/<env>``: rl-baselines3-zoo's file for the run's algorithm
    and env, where it differs from the shipped one (the algo and env named, else the defaults of
    conf/config.yaml). One algo and one env: a sweep over them names each file itself."""
    if f"tuned={ZOO}" not in argv:
        return argv
    chosen = {}
    for group in ("algo", "env"):
        values = [a.split("=", 1)[1] for a in argv if re.match(rf"\+*{group}=", a)]
        chosen[group] = values[-1] if values else default_choice(group)
        if re.search(r"[,()\[\]]", chosen[group]):
            raise ConfigError(f"tuned=zoo takes one {group}, not {group}={chosen[group]}: in a sweep over them, name "
                              f"each file (tuned=zoo/<algo>/<env>)")
    name = f"{ZOO}/{chosen['algo']}/{chosen['env']}"
    if not (CONF_DIR / "tuned" / f"{name}.yaml").is_file():
        files = sorted(str(p.relative_to(CONF_DIR / "tuned" / ZOO).with_suffix(""))
                       for p in (CONF_DIR / "tuned" / ZOO).rglob("*.yaml"))
        raise ConfigError(f"tuned=zoo: no rl-zoo file for algo={chosen['algo']} env={chosen['env']} "
                          f"(conf/tuned/{name}.yaml); there are: {', '.join(files)}")
    return [f"tuned={name}" if a == f"tuned={ZOO}" else a for a in argv]


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


def resume_path(value: str) -> Path:
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
    run_dir = resume_path(resume[-1].split("=", 1)[1])
    if (run_dir / "multirun.yaml").is_file():
        return expand_sweep_resume(run_dir, [a for a in argv if not a.startswith("resume=")], trust_modules)
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        raise ConfigError(f"resume={run_dir} is not an rlrun run directory (no .hydra/overrides.yaml)")
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise ConfigError(f"resume={run_dir} has no checkpoint to resume from (checkpoints/last.pt is missing)")
    try:
        saved = OmegaConf.load(overrides_file)
    except Exception as err:
        raise ConfigError(f"resume={run_dir}: {overrides_file} cannot be read ({one_line(err)})") from None
    if not OmegaConf.is_list(saved):
        raise ConfigError(f"resume={run_dir}: {overrides_file} is not a list of overrides")
    original = [str(o) for o in saved if not str(o).startswith("resume=")]
    hydra_keys = [o for o in original if override_key(o).startswith("hydra")]
    if hydra_keys:  # Hydra keeps its own overrides in hydra.yaml: this file was written by hand
        raise ConfigError(f"resume={run_dir}: {overrides_file} sets Hydra's {hydra_keys[0]!r}, which a run's "
                          f"overrides never do; refused")
    others = [a for a in argv if not a.startswith("resume=")]
    return [*original, *others, f"resume={hydra_quote(str(run_dir))}",
            f"hydra.run.dir={hydra_quote(str(run_dir))}", "hydra.mode=RUN"]


def expand_sweep_resume(sweep_dir: Path, others: list[str], trust_modules: bool = False) -> list[str]:
    """``resume=<sweep dir>`` -> the sweep's own command into the same directory, with the user's
    other overrides (a launcher, say) in place of the saved ones: each job then continues from
    what it left there (rlrun.sweep_jobs.earlier_attempt), and completed jobs are not run again."""
    try:
        saved = OmegaConf.load(sweep_dir / "multirun.yaml").hydra
        task, hydra_saved, sweeper = list(saved.overrides.task), list(saved.overrides.hydra), saved.sweeper._target_
    except Exception as err:
        raise ConfigError(f"resume={sweep_dir}: multirun.yaml cannot be read ({one_line(err)})") from None
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
    hydra_saved = [str(o) for o in hydra_saved if override_key(str(o)) not in ("hydra.sweep.dir", "hydra.mode")]
    calls = [o for o in hydra_saved if "_target_" in o or "callbacks" in override_key(o)]
    if calls and not trust_modules:
        raise ConfigError(f"resume={sweep_dir}: multirun.yaml sets {calls[0]!r}, which names code for Hydra to call; "
                          f"if you trust where the sweep came from, add {TRUST_FLAG}")
    flags = [a for a in others if a.startswith("-")]  # Hydra's argparse wants them before the overrides
    others = [a for a in others if not a.startswith("-")]
    replaced = {override_key(a) for a in others}
    kept = [str(o) for o in [*task, *hydra_saved] if override_key(str(o)) not in replaced]
    multirun = [] if {"-m", "--multirun"} & set(flags) else ["-m"]
    return [*multirun, *flags, *kept, *others, f"hydra.sweep.dir={hydra_quote(str(sweep_dir))}"]


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
    if any(override_key(o) == "hydra.job.config.override_dirname.exclude_keys" for o in hydra_overrides):
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(task)
    except Exception:
        return None  # the checks before have reported it
    # Hydra names a job's override_dirname by each override's key_or_group (``+sweep`` as ``sweep``)
    shared = [o.key_or_group for o in parsed if not o.is_sweep_override() and o.key_or_group not in NON_EXPERIMENT_KEYS]
    if not shared:
        return None
    keys = [*NON_EXPERIMENT_KEYS, *shared]
    return "hydra.job.config.override_dirname.exclude_keys=[" + ",".join(f"'{k}'" for k in keys) + "]"


def use_ray_token(argv: list[str]) -> None:
    """Ray 2.59+ heads started by `ray start` require token authentication, but a client that
    connects to one only sends its token with RAY_AUTH_MODE=token: set it for Ray launchers when
    this machine has a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)."""
    if not any(a.startswith("hydra/launcher=ray") for a in argv) or "RAY_AUTH_MODE" in os.environ:
        return
    if (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"
