"""The console script end to end, in subprocesses from a temporary directory."""

import json
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from tests.conftest import read_scalars
from tests.test_sweeps import has
from rlrun.checkpoint import load_checkpoint

COMMON_TAGS = {"rollout/ep_return", "rollout/ep_length", "time/fps", "loss/policy", "loss/value",
               "policy/entropy", "ppo_clip/kl", "ppo_clip/approx_kl", "ppo_clip/clip_fraction",
               "value/explained_variance", "train/learning_rate"}
SUMMARY_KEYS = {"algo", "env", "seed", "total_steps", "steps_done", "wall_s", "fps", "final_return",
                "threshold", "solved_step", "solved_wall_s"}


def only_run_dir(root: Path) -> Path:
    dirs = [p.parent for p in root.rglob("summary.json")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_cartpole_run_writes_events_summary_and_checkpoint(run_rlrun):
    res = run_rlrun("algo=ppo_clip", "env=CartPole-v1", "total_steps=3000", "progress=lines", "checkpoint_every=1024", "keep_checkpoints=true")
    assert res.returncode == 0, res.stderr
    run_dir = only_run_dir(run_rlrun.cwd / "outputs")
    assert run_dir.relative_to(run_rlrun.cwd).parts[:3] == ("outputs", "ppo_clip", "CartPole-v1")
    assert run_dir.name.startswith("seed0_")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["steps_done"] >= 3000 and summary["threshold"] == 475.0 and summary["final_return"] > 0
    scalars = read_scalars(run_dir)
    assert COMMON_TAGS <= set(scalars), COMMON_TAGS - set(scalars)
    assert all(torch.isfinite(torch.tensor([v for _, v in scalars[t]])).all() for t in COMMON_TAGS)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert {"actor", "critic", "algo", "rng", "steps", "config", "obs_normalizer"} <= set(ckpt)
    assert ckpt["steps"] == summary["steps_done"] and ckpt["config"]["algo"]["name"] == "ppo_clip"
    assert (run_dir / "checkpoints" / "step_1024.pt").exists()
    assert (run_dir / "rlrun.log").exists()


def test_continuous_env_with_normalisation_runs(run_rlrun):
    res = run_rlrun("env=Pendulum-v1", "total_steps=1024", "algo.n_steps=128", "env.normalize_obs=true",
                    "env.normalize_reward=true", "progress=off")
    assert res.returncode == 0, res.stderr
    run_dir = only_run_dir(run_rlrun.cwd / "outputs")
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["obs_normalizer"]["count"] > 1000 and ckpt["reward_normalizer"] is not None
    assert json.loads((run_dir / "summary.json").read_text())["final_return"] < 0


def test_env_without_yaml_runs_with_generic_defaults(run_rlrun):
    res = run_rlrun("env=FrozenLake-v1", "total_steps=512", "algo.n_steps=64", "progress=off")
    assert res.returncode == 0, res.stderr
    assert json.loads((only_run_dir(run_rlrun.cwd / "outputs") / "summary.json").read_text())["env"] == "FrozenLake-v1"


def test_the_job_folders_leave_out_every_shared_override_as_hydra_names_them():
    """Hydra names a job by each override's key_or_group: ``+sweep=all_algos`` is excluded as ``sweep``."""
    from rlrun.launch.arguments import same_in_every_job

    exclusion = same_in_every_job(["-m", "+sweep=all_algos", "env=CartPole-v1", "total_steps=64", "seed=0,1"])
    assert "'sweep'" in exclusion and "'total_steps'" in exclusion and "'+sweep'" not in exclusion


def test_two_run_multirun(run_rlrun):
    res = run_rlrun("-m", "seed=0,1", "total_steps=512", "algo.n_steps=32")
    assert res.returncode == 0, res.stderr
    summaries = sorted((run_rlrun.cwd / "outputs" / "multirun").rglob("summary.json"))
    assert [json.loads(p.read_text())["seed"] for p in summaries] == [0, 1]
    sweep = summaries[0].parents[3]
    assert [str(p.parent.relative_to(sweep)) for p in summaries] == [
        "ppo_clip/CartPole-v1/seed0", "ppo_clip/CartPole-v1/seed1"]  # what every job shares is left out


@pytest.mark.parametrize("args, needle", [
    (["algo=nope"], "algo='nope' is not an algorithm"),
    (["env=CartPol-v1"], "did you mean CartPole-v1"),
    (["algo.clip_eps=abc"], "could not be converted to Float"),
    (["total_steps=-5"], "total_steps=-5"),
])
def test_bad_input_gives_clear_error_without_traceback(run_rlrun, args, needle):
    res = run_rlrun(*args, timeout=60)
    assert res.returncode != 0
    assert needle in res.stderr + res.stdout
    assert "Traceback" not in res.stderr + res.stdout


@pytest.mark.parametrize("argv", [["--help"], ["--cfg", "job"], ["algo=trpo", "env=Pendulum-v1", "--cfg", "job"],
                                  ["algo.max_kl=-1", "algo=trpo"], ["algo.clip_eps=abc"], ["algo=tpro"],
                                  ["algo.clip_epss=0.1"], ["-m", "algo=trpo,ppo_clip", "algo.n_steps=0"]])
def test_help_config_commands_and_config_errors_import_neither_torch_nor_gymnasium(argv):
    """--help never composes; --cfg job composes (the configs are read from the algorithm files
    without importing them) and makes no env; a config error is found before any env is made."""
    code = (f"import sys; sys.argv = ['rlrun', *{argv!r}]\n"
            "from rlrun.cli import main\n"
            "try:\n    main()\n    status = 0\nexcept SystemExit as exit:\n    status = exit.code or 0\n"
            "print('loaded:', [m for m in ('torch', 'gymnasium') if m in sys.modules], 'exit:', status)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    error = not ({"--help", "--cfg"} & set(argv))
    assert res.stdout.splitlines()[-1] == f"loaded: [] exit: {2 if error else 0}", res.stdout[-500:] + res.stderr[-500:]
    assert ("rlrun: error: " in res.stderr) == error, res.stderr


def test_non_editable_install_finds_its_configs(tmp_path):
    """`pip install .` puts conf/ inside the package as rlrun.conf; rlrun then works from any directory."""
    repo = tmp_path / "src"  # the sources only: a stale build/ of an earlier `pip install .` would be reused
    shutil.copytree(Path(__file__).resolve().parent.parent, repo,
                    ignore=shutil.ignore_patterns("build", "outputs", ".venv*", ".git", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(repo)], check=True, capture_output=True, timeout=300)
    assert (target / "rlrun" / "conf" / "config.yaml").exists()
    assert (target / "rlrun" / "conf" / "tuned" / "ppo_clip" / "CartPole-v1.yaml").exists()
    code = "import sys; sys.argv = ['rlrun', 'env=Pendulum-v1', '--cfg', 'job']; from rlrun.cli import main; main()"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert "id: Pendulum-v1" in res.stdout


def test_async_vectorization_runs(run_rlrun):
    res = run_rlrun("env.vectorization=async", "env.num_envs=2", "total_steps=256", "algo.n_steps=64", "progress=off")
    assert res.returncode == 0, res.stderr
    assert json.loads((only_run_dir(run_rlrun.cwd / "outputs") / "summary.json").read_text())["steps_done"] == 256


def test_help_is_rlrun_own_page(run_rlrun):
    """`rlrun --help` (Hydra's help config, conf/hydra/help/rlrun.yaml) names every algorithm, shipped
    env and sweep preset and the companion commands, and no internal config group."""
    res = run_rlrun("--help", timeout=60)
    assert res.returncode == 0, res.stderr
    from rlrun.algos.registry import algorithms

    for name, registration in algorithms().items():  # each with its summary and its own knobs
        assert f"{name}  " in res.stdout and registration.summary in res.stdout, name
        assert f"{fields(registration.config)[-1].name}=" in res.stdout, name
    conf = Path(__file__).resolve().parent.parent / "conf"
    for group in ("env", "sweep"):
        for option in sorted(p.stem for p in (conf / group).glob("*.yaml")):
            assert option in res.stdout, f"{group}={option} missing from rlrun --help"
    for companion in ("rlrun-report", "rlrun-eval", "tensorboard"):
        assert companion in res.stdout
    assert "schema/" not in res.stdout and "tuned/" not in res.stdout.replace("conf/tuned/", "")
    assert "powered by Hydra" not in res.stdout


def test_logs_to_a_pipe_are_whole_lines_and_the_overshoot_is_said(run_rlrun):
    """Not a terminal: plain log lines, never wrapped (a path stays on one line); an iteration larger
    than total_steps is said before the run; the end line says 'not solved' rather than None."""
    res = run_rlrun("env=FrozenLake-v1", "total_steps=100", "algo.n_steps=32", "env.num_envs=4", "progress=off",
                    "hydra.run.dir=" + "a_rather_long_directory_name_" * 3 + "run", timeout=120)
    assert res.returncode == 0, res.stderr
    assert ("rlrun: note: one iteration is algo.n_steps x env.num_envs = 32 x 4 = 128 env steps, more than "
            "total_steps=100: the run does 1 iteration (128 steps)") in res.stderr
    run_dir = run_rlrun.cwd / ("a_rather_long_directory_name_" * 3 + "run")
    start = [line for line in res.stdout.splitlines() if "ppo_clip on FrozenLake-v1" in line]
    assert len(start) == 1 and start[0].endswith(f"-> {run_dir}")
    (done,) = [line for line in res.stdout.splitlines() if "done:" in line]
    assert "done: 128 env steps (total_steps 100, whole iterations of 128)" in done
    assert done.endswith("not solved") and "None" not in res.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["total_steps"], summary["steps_done"]) == (100, 128)


@pytest.mark.parametrize("group, option, extra", [("launcher", "joblib", "joblib"), ("launcher", "ray", "ray"),
                                                  ("launcher", "submitit_slurm", "slurm"), ("sweeper", "optuna", "optuna")])
def test_a_missing_hydra_plugin_is_named_with_its_install_command(group, option, extra):
    from rlrun.launch.checks import explain

    message = explain(Exception(f"In 'hydra/config': Could not find 'hydra/{group}/{option}'\n\nAvailable options:"))
    assert message.startswith(f"hydra/{group}={option} needs Hydra's {extra} plugin") and "\n" not in message
    assert f"pip install -e '.[{extra}]'" in message


@pytest.mark.skipif(has("hydra_plugins.hydra_joblib_launcher"), reason="the joblib launcher is installed here")
def test_the_joblib_launcher_without_its_extra_is_one_line(run_rlrun):
    res = run_rlrun("-m", "seed=0,1", "hydra/launcher=joblib")
    assert res.returncode == 2 and "pip install -e '.[joblib]'" in res.stderr and "Traceback" not in res.stderr


def test_env_id_without_env_uses_that_ids_own_settings_and_says_so(run_rlrun):
    """env.id=Acrobot-v1 alone once trained with CartPole-v1's tuned values (8 envs x 32 steps)."""
    from omegaconf import OmegaConf

    res = run_rlrun("env.id=Acrobot-v1", "total_steps=256", "progress=off", "hydra.run.dir=alone")
    assert res.returncode == 0, res.stderr
    assert "env.id=Acrobot-v1 without env=: read as env=Acrobot-v1" in res.stderr
    alone = OmegaConf.load(run_rlrun.cwd / "alone" / ".hydra" / "config.yaml")
    assert alone.tuned_file == "conf/tuned/ppo_clip/Acrobot-v1.yaml" and alone.env.id == "Acrobot-v1"
    res = run_rlrun("env=CartPole-v1", "env.id=Acrobot-v1", "total_steps=256", "progress=off", "hydra.run.dir=kept")
    assert res.returncode == 0 and "read as env=" not in res.stderr
    kept = OmegaConf.load(run_rlrun.cwd / "kept" / ".hydra" / "config.yaml")
    assert kept.tuned_file == "conf/tuned/ppo_clip/CartPole-v1.yaml" and kept.env.id == "Acrobot-v1"


def test_a_long_log_line_on_a_terminal_stays_one_line():
    """rich used to wrap at the terminal's width, splitting the resume hint after `rlrun`; pasting
    both lines started a bare default run first."""
    import io
    import logging

    from rich.console import Console

    from rlrun.console_log import one_line_rich_handler

    out = io.StringIO()
    handler = one_line_rich_handler(Console(file=out, width=80, force_terminal=True, color_system=None))
    logger = logging.getLogger("rlrun.test_one_line")
    logger.addHandler(handler)
    logger.propagate = False
    hint = "resume with: rlrun 'resume=/a/rather/long/run/directory/ppo_clip/CartPole-v1/seed0_2026-12-05_10-00-00'"
    logger.warning("stopped at step 46080; checkpoint saved; %s", hint)
    (line,) = out.getvalue().splitlines()
    assert line.endswith(f"WARNING stopped at step 46080; checkpoint saved; {hint}") and line.startswith("[20")
