"""rlrun-eval: a real run's checkpoint evaluates, the saved normalisation is applied, videos, errors."""

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlrun.eval_command import evaluate, main
from rlrun.policy import Policy
from rlrun.normalization import ObsNormalizer

EVAL = [sys.executable, "-m", "rlrun.eval_command"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny CartPole run with a checkpoint."""
    tmp = tmp_path_factory.mktemp("eval")
    subprocess.run([sys.executable, "-m", "rlrun.cli", "total_steps=2048", "algo.n_steps=64", "progress=off",
                    f"hydra.run.dir={tmp}/run"], cwd=tmp, check=True, capture_output=True, timeout=300)
    return tmp / "run"


def test_checkpoint_evaluates_and_writes_eval_json(run_dir):
    proc = subprocess.run([*EVAL, str(run_dir), "--episodes", "3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].endswith("return over 3 episodes (deterministic)") and "±" in lines[-1]
    report = json.loads((run_dir / "eval.json").read_text())
    assert len(report["returns"]) == len(report["lengths"]) == report["episodes"] == 3
    assert report["mean"] == pytest.approx(np.mean(report["returns"]))
    assert report["mode"] == "deterministic" and report["steps"] == 2048
    assert report["seed"] == 10000  # the run's seed 0 + 10000


def test_deterministic_evaluation_is_repeatable(run_dir, capsys):
    returns = []
    for _ in range(2):
        assert main([str(run_dir / "checkpoints" / "last.pt"), "--episodes", "2", "--seed", "7"]) == 0
        returns.append(json.loads((run_dir / "eval.json").read_text())["returns"])
    assert returns[0] == returns[1]


class ConstantEnv(gym.Env):
    """Always observes OBS; episodes last 3 steps; a Discrete or a [-1, 1] Box action space."""

    OBS = np.array([1.0, 2.0, 3.0], np.float32)

    def __init__(self, action_space: spaces.Space):
        self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = action_space
        self.actions = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.OBS.copy(), {}

    def step(self, action):
        self.actions.append(action)
        self.t += 1
        return self.OBS.copy(), 1.0, False, self.t == 3, {}


class RecordingActor(torch.nn.Module):
    """Records its inputs; prefers action 1 (Categorical), or has mean 5 (Gaussian)."""

    def __init__(self, gaussian: bool = False):
        super().__init__()
        self.gaussian, self.inputs = gaussian, []
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def act(self, obs, deterministic=False, generator=None):
        self.inputs.append(obs.clone())
        if self.gaussian:
            return torch.full((len(obs), 1), 5.0)
        return torch.ones(len(obs), dtype=torch.long)


def policy(actor, env, normalizer=None) -> Policy:
    return Policy(actor, env.observation_space, env.action_space, normalizer)


def test_saved_normalisation_is_applied_and_not_updated():
    normalizer = ObsNormalizer((3,), clip=10.0)
    normalizer.rms.mean, normalizer.rms.var, normalizer.rms.count = np.array([1.0, 0.0, -1.0]), np.array([4.0, 1.0, 0.25]), 50.0
    before = normalizer.rms.state_dict()
    actor, env = RecordingActor(), ConstantEnv(spaces.Discrete(2))
    assert evaluate(policy(actor, env, normalizer), env, episodes=2, deterministic=True, seed=0) == [(3.0, 3), (3.0, 3)]
    expected = torch.tensor([[0.0, 2.0, 8.0]])  # (obs - mean) / std
    assert len(actor.inputs) == 6
    for seen in actor.inputs:
        torch.testing.assert_close(seen, expected, atol=1e-5, rtol=0)
    after = normalizer.rms.state_dict()
    assert after["count"] == before["count"]
    np.testing.assert_array_equal(after["mean"], before["mean"])
    np.testing.assert_array_equal(after["var"], before["var"])
    assert env.actions == [1] * 6  # argmax


def test_gaussian_mode_is_the_mean_clipped_to_the_bounds():
    env = ConstantEnv(spaces.Box(-1.0, 1.0, (1,), np.float32))
    evaluate(policy(RecordingActor(gaussian=True), env), env, episodes=1, deterministic=True, seed=0)
    assert [float(a[0]) for a in env.actions] == [1.0, 1.0, 1.0]


def test_video_writes_an_mp4(run_dir, tmp_path, capsys):
    pytest.importorskip("moviepy", reason="--video needs moviepy: pip install 'rlrun[video]'")
    assert main([str(run_dir), "--episodes", "1", "--video", str(tmp_path / "videos")]) == 0
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0


def test_missing_checkpoint_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([*EVAL, str(tmp_path / "no_such_run")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "no checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_device_is_one_line_exit_2(run_dir, capsys):
    assert main([str(run_dir), "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "rlrun-eval: error: --device 'tpu' is not one of cpu, cuda, auto"


def test_report_goes_to_out_and_an_unwritable_place_is_one_line(run_dir, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main([str(run_dir), "--episodes", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["episodes"] == 1
    capsys.readouterr()
    assert main([str(run_dir), "--episodes", "1", "--out", str(tmp_path / "no_dir" / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write" in err and "--out FILE" in err


class EndlessEnv(gym.Env):
    """No termination and no time limit: only a step cap ends an episode."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 1.0, False, False, {}


def test_max_steps_ends_episodes_of_an_env_without_time_limit():
    from rlrun.networks import CategoricalActor

    actor = CategoricalActor(1, 2, [4], "tanh", True)
    env = EndlessEnv()
    results = evaluate(policy(actor, env), env, episodes=2, deterministic=True, seed=0, max_steps=50)
    assert results == [(50.0, 50), (50.0, 50)]


@pytest.mark.parametrize("seed", ["-1", str(2**40)])
def test_a_seed_out_of_range_is_one_line_exit_2(run_dir, capsys, seed):
    assert main([str(run_dir), "--seed", seed]) == 2
    assert "--seed" in capsys.readouterr().err


def test_video_of_an_env_that_cannot_render_is_one_line(tmp_path, capsys):
    pytest.importorskip("moviepy", reason="--video needs moviepy: pip install 'rlrun[video]'")
    import os
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, "-m", "rlrun.cli", "env=tests.faulty_envs:Endless-v0", "env.num_envs=1",
                    "total_steps=64", "algo.n_steps=64", "progress=off", f"hydra.run.dir={tmp_path}/run"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=300, env=env)
    import tests.faulty_envs  # noqa: F401 - imported: no consent needed
    assert main([str(tmp_path / "run"), "--episodes", "1", "--video", str(tmp_path / "videos")]) == 2
    assert "--video: tests.faulty_envs:Endless-v0 cannot be made for recording" in capsys.readouterr().err
