"""Sweep presets, launchers (joblib, Ray on loopback), Optuna, and the per-run HParams entry."""

import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import signal
import tempfile
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from omegaconf import OmegaConf

from rlrun.config import CONF_DIR
from rlrun.config import register_configs, validate

register_configs()
PRESETS = sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml"))


def has(module: str) -> bool:
    """Whether ``module`` is importable; False, not ModuleNotFoundError, when its parent package
    (``hydra_plugins`` without any launcher installed) is absent."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_as_a_multirun(preset):
    if preset.startswith("optuna") and not has("hydra_plugins.hydra_optuna_sweeper"):
        pytest.skip("pip install 'rlrun[optuna]' to compose the Optuna presets")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"+sweep={preset}", "env=CartPole-v1"], return_hydra_config=True)
    validate(cfg)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.hydra.sweeper.params


def test_the_basic_sweeper_does_not_compose_again_the_jobs_the_preflight_checked(tmp_path, monkeypatch):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from rlrun.launch.checks import preflight, skip_checked_jobs

    monkeypatch.setattr(BasicSweeper, "validate_batch_is_legal", BasicSweeper.validate_batch_is_legal)  # restored after
    argv = ["-m", "algo=ppo_clip,a2c", "seed=0,1,2", "total_steps=512", f"hydra.sweep.dir={tmp_path}/sweep"]
    sweep_dir, jobs = preflight(argv)
    assert sweep_dir == str(tmp_path / "sweep") and len(jobs) == 6
    skip_checked_jobs(jobs)
    skip_checked_jobs(jobs)  # a second command in the same process: still Hydra's check underneath

    composed = []
    loader = type("Loader", (), {"load_sweep_config": lambda self, master_config, sweep_overrides:
                                 composed.append(sweep_overrides)})()
    sweeper = type("Sweeper", (), {"hydra_context": type("Context", (), {"config_loader": loader})(),
                                   "config": OmegaConf.create()})()
    task = ["algo=ppo_clip,a2c", "seed=0,1,2", "total_steps=512"]
    [batch] = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(task), None)  # as Hydra lists them
    assert len(batch) == 6
    BasicSweeper.validate_batch_is_legal(sweeper, batch)
    assert composed == []
    BasicSweeper.validate_batch_is_legal(sweeper, [*batch, ["algo=trpo", "seed=0", "total_steps=512"]])
    assert composed == [["algo=trpo", "seed=0", "total_steps=512"]]  # a job the preflight did not check


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


@pytest.mark.skipif(not has("hydra_plugins.hydra_joblib_launcher"), reason="pip install 'rlrun[joblib]'")
def test_joblib_multirun_runs_two_jobs(run_rlrun):
    res = run_rlrun("-m", "seed=0,1", "total_steps=512", "algo.n_steps=32", "hydra/launcher=joblib")
    assert res.returncode == 0, res.stderr
    assert sorted(s["seed"] for s in summaries(run_rlrun.cwd / "outputs")) == [0, 1]


@pytest.mark.skipif(not has("hydra_plugins.hydra_ray_launcher"), reason="pip install 'rlrun[ray]'")
def test_ray_multirun_on_loopback_runs_two_jobs(run_rlrun):
    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    ray_tmp = tempfile.mkdtemp(prefix="rr", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    try:
        res = run_rlrun("-m", "seed=0,1", "total_steps=512", "algo.n_steps=32", "hydra/launcher=ray_local",
                        f"hydra.launcher.ray.init._temp_dir={ray_tmp}", env=env, timeout=600)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(s["seed"] for s in summaries(run_rlrun.cwd / "outputs")) == [0, 1]


@pytest.fixture
def ray_head():
    """A Ray head on 127.0.0.1 started with `ray start`, as on a cluster's head node; its address."""
    ray = Path(sys.executable).parent / "ray"
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                   cwd=temp, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}", Path(temp)
    finally:
        subprocess.run([str(ray), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.skipif(not has("hydra_plugins.hydra_ray_launcher"), reason="pip install 'rlrun[ray]'")
def test_the_readme_ray_cluster_command_against_a_running_head(run_rlrun, ray_head):
    """The launcher must not pass its object-store default to a running cluster, must send the
    head's auth token, and the jobs must write under the submitting directory, not where
    `ray start` ran."""
    address, head_dir = ray_head
    res = run_rlrun("-m", "algo=ppo_clip,trpo", "seed=0,1", "total_steps=512", "algo.n_steps=64", "progress=off",
                    "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={address}",
                    env={"RAY_USAGE_STATS_ENABLED": "0"}, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted((s["algo"], s["seed"]) for s in summaries(run_rlrun.cwd / "outputs")) == [
        ("ppo_clip", 0), ("ppo_clip", 1), ("trpo", 0), ("trpo", 1)]
    assert not list(head_dir.rglob("summary.json"))
    sweep = next((run_rlrun.cwd / "outputs" / "multirun").iterdir())
    report = subprocess.run([sys.executable, "-m", "rlrun.report", str(sweep)], capture_output=True, text=True)
    assert report.returncode == 0 and "| ppo_clip | 2 |" in (sweep / "report" / "report.md").read_text()


def test_failing_jobs_keep_the_others_and_the_sweep_names_each_failure(run_rlrun):
    repo = str(Path(__file__).resolve().parent.parent)
    res = run_rlrun("-m", "env=tests.faulty_envs:NanReward-v0,CartPole-v1,tests.faulty_envs:Crash-v0",
                    "total_steps=1024", "algo.n_steps=32", "progress=off", env={"PYTHONPATH": repo})
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("rlrun: error: 2 of 3 jobs in ") and lines[0].endswith(" did not complete:"), res.stderr
    assert "ppo_clip/tests.faulty_envs:Crash-v0/seed0" in lines[1] and "RuntimeError: boom" in lines[1]
    assert "rlrun.log" in lines[1]
    assert "ppo_clip/tests.faulty_envs:NanReward-v0/seed0" in lines[2] and "non-finite reward" in lines[2]
    statuses = sorted(s["status"] for s in summaries(run_rlrun.cwd / "outputs"))
    assert statuses == ["completed", "crashed", "failed"]
    crash_log = next((run_rlrun.cwd / "outputs").rglob("tests.faulty_envs:Crash-v0/seed0*/rlrun.log")).read_text()
    assert "Traceback" in crash_log and "RuntimeError: boom" in crash_log


@pytest.mark.skipif(not has("hydra_plugins.hydra_optuna_sweeper"), reason="pip install 'rlrun[optuna]'")
def test_optuna_with_long_overrides_and_a_never_solved_objective_runs_every_trial(run_rlrun):
    """Sampled floats make names longer than a file system allows unless hashed; a trial that never
    solves the env scores the steps it ran (not NaN), and steps are minimised."""
    res = run_rlrun("+sweep=optuna_ppo_clip", "env=CartPole-v1", "total_steps=1024", "algo.n_steps=64",
                    "env.normalize_obs=true", "algo.vf_coef=0.50000000001", "algo.max_grad_norm=0.50000000001",
                    "objective=solved_step", "hydra.sweeper.n_trials=3", "progress=off")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Directions: ['minimize']" in res.stdout + res.stderr
    done = summaries(run_rlrun.cwd / "outputs")
    assert len(done) == 3 and all(s["status"] == "completed" and s["solved_step"] is None for s in done)
    names = [p.parent.name for p in (run_rlrun.cwd / "outputs").rglob("summary.json")]
    assert all(len(name.encode()) < 160 and ",..." in name for name in names), names
    assert "Best value: 1024.0" in res.stdout + res.stderr


@pytest.mark.skipif(not has("hydra_plugins.hydra_optuna_sweeper"), reason="pip install 'rlrun[optuna]'")
def test_an_optuna_direction_against_the_objective_is_refused(run_rlrun):
    res = run_rlrun("+sweep=optuna_ppo_clip", "objective=solved_step", "hydra.sweeper.direction=maximize")
    assert res.returncode == 2 and "set hydra.sweeper.direction=minimize" in res.stderr, res.stderr
    assert not (run_rlrun.cwd / "outputs").exists()


@pytest.mark.skipif(not has("hydra_plugins.hydra_optuna_sweeper"), reason="pip install 'rlrun[optuna]'")
def test_optuna_sweep_of_two_trials_with_a_persistent_study(run_rlrun):
    db = run_rlrun.cwd / "optuna.db"
    args = ["+sweep=optuna_ppo_clip", "env=CartPole-v1", "total_steps=1024", "algo.n_steps=64",
            "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage=sqlite:///{db}", "hydra.sweeper.study_name=t"]
    res = run_rlrun(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(summaries(run_rlrun.cwd / "outputs")) == 2
    res = run_rlrun(*args)  # the same study continues: 2 more trials
    assert res.returncode == 0, res.stderr[-3000:]
    with sqlite3.connect(db) as con:
        (n,) = con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()
    assert n == 4


def test_each_run_writes_an_hparams_entry_with_the_same_keys(run_rlrun):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    res = run_rlrun("-m", "algo=ppo_clip,trpo", "seed=0,1", "total_steps=1024", "algo.n_steps=256",
                    "env.num_envs=2")
    assert res.returncode == 0, res.stderr
    key_sets = []
    for run_dir in sorted(p.parent for p in (run_rlrun.cwd / "outputs").rglob("summary.json")):
        acc = EventAccumulator(str(run_dir))
        acc.Reload()
        content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        key_sets.append(set(info.hparams))
        algo = info.hparams["algo"].string_value
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        knob = {"ppo_clip": "algo.clip_eps", "trpo": "algo.max_kl"}[algo]
        assert info.hparams[knob].number_value == OmegaConf.select(cfg, knob)
        assert info.hparams["algo.n_steps"].number_value == 256 and info.hparams["seed"].string_value == str(cfg.seed)
        key_sets[-1] -= {knob}
    # algo, env, seed (as text: no 0.0000), its own trust-region knob, and the keys the command line
    # set (what a sweep varies)
    assert len(key_sets) == 4 and all(keys == key_sets[0] for keys in key_sets)
    assert key_sets[0] == {"algo", "env", "seed", "total_steps", "algo.n_steps", "env.num_envs"}


def test_job_folders_stay_three_levels_down_and_a_resumed_sweep_reports_every_failure(run_rlrun):
    """An env id in a namespace (as MinAtar/ and ALE/ ids) does not nest a job's folder deeper than
    <algo>/<env>/<seed>, so the report finds the crashed job; resumed, the sweep reports it again
    from the job's own summary."""
    repo = str(Path(__file__).resolve().parent.parent)
    args = ("-m", "env.id=tests.faulty_envs:faulty/Crash-v0,CartPole-v1", "total_steps=1024", "algo.n_steps=32",
            "progress=off", "hydra.sweep.dir=sweep")
    res = run_rlrun(*args, env={"PYTHONPATH": repo})
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    sweep = run_rlrun.cwd / "sweep"
    jobs = sorted(d.parent.relative_to(sweep) for d in sweep.rglob(".hydra"))
    assert [str(job) for job in jobs] == [
        "ppo_clip/CartPole-v1/seed0", "ppo_clip/tests.faulty_envs:faulty-Crash-v0/seed0"]
    assert "1 of 2 jobs" in res.stderr and f"{jobs[1]}: RuntimeError: boom" in res.stderr
    resumed = run_rlrun("-m", f"resume={sweep}", "--trust-modules", env={"PYTHONPATH": repo})
    assert resumed.returncode == 1 and f"{jobs[1]}: RuntimeError: boom" in resumed.stderr, resumed.stderr
    assert "1 of 2 jobs" in resumed.stderr


@pytest.mark.skipif(not has("hydra_plugins.hydra_ray_launcher"), reason="pip install 'rlrun[ray]'")
def test_a_ray_address_with_the_local_ray_launcher_names_ray_cluster(run_rlrun):
    res = run_rlrun("-m", "seed=0", "hydra/launcher=ray", "+hydra.launcher.ray.init.address=127.0.0.1:6379")
    assert res.returncode == 2 and "use hydra/launcher=ray_cluster" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.skipif(not has("hydra_plugins.hydra_submitit_launcher"), reason="pip install 'rlrun[slurm]'")
def test_a_slurm_warning_delay_longer_than_the_limit_is_said_before_submitting(run_rlrun):
    res = run_rlrun("-m", "seed=0", "total_steps=256", "hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=1",
                    env={"PATH": "/nonexistent"})  # no sbatch here: the note comes before any submission
    assert "signal_delay_s=120 is not shorter than hydra.launcher.timeout_min=1" in res.stderr


STOPPED_SWEEPS = {  # launcher overrides; True: Ctrl-C as a terminal sends it, to the whole process group
    "joblib": (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], True),
    "ray": (["hydra/launcher=ray_local", "hydra.launcher.ray.remote.num_cpus=1"], False),
}


@pytest.mark.parametrize("launcher", sorted(STOPPED_SWEEPS))
def test_ctrl_c_of_a_sweep_saves_the_running_jobs_and_starts_no_other(tmp_path, launcher):
    """Ctrl-C in the driver: each running job saves (joblib's workers get the terminal's Ctrl-C
    too; Ray's workers, outside the terminal's process group, see the driver's marker after their
    iteration), the driver waits for them instead of killing them, and the third job never starts."""
    from tests.conftest import spawn_rlrun, wait_until

    if not has(f"hydra_plugins.hydra_{launcher}_launcher"):
        pytest.skip(f"pip install 'rlrun[{launcher}]'")
    overrides, to_group = STOPPED_SWEEPS[launcher]
    ray_tmp = tempfile.mkdtemp(prefix="rr", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    if launcher == "ray":
        overrides = [*overrides, f"hydra.launcher.ray.init._temp_dir={ray_tmp}"]
    sweep = tmp_path / "sweep"
    proc = spawn_rlrun(tmp_path, "-m", "seed=0,1,2", "total_steps=10000000", "checkpoint_every=0", "progress=off",
                       *overrides, f"hydra.sweep.dir={sweep}", start_new_session=True)
    try:
        started = lambda: len([p for p in sweep.glob("*/*/*/rlrun.log") if "steps -> " in p.read_text()]) == 2  # noqa: E731
        assert wait_until(started, 300)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT) if to_group else proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "stopping the sweep" in err and f"rlrun -m resume={sweep}" in " ".join(err.split())
    jobs = sorted(d.parent for d in sweep.glob("*/*/*/.hydra"))
    for job in jobs[:2]:
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["steps_done"] > 0
        assert (job / "checkpoints" / "last.pt").is_file()
    assert len(jobs) == 2 or not (jobs[2] / "summary.json").exists()
    assert not (sweep / ".rlrun-stopping").exists()


def test_a_sweep_that_succeeds_says_so_with_the_report_command(run_rlrun):
    res = run_rlrun("-m", "seed=0,1", "total_steps=256", "progress=off", "hydra.sweep.dir=sweep")
    assert res.returncode == 0, res.stderr
    (line,) = [line for line in res.stderr.splitlines() if line.startswith("rlrun: 2 of 2 jobs")]
    assert line.endswith(f"completed; compare them with: rlrun-report {run_rlrun.cwd / 'sweep'}")
