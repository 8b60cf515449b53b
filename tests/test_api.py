"""The Python API: rlrun.train composes and checks as the command line does and runs in-process;
rlrun.load gives the saved policy, with its normalisation, as rlrun-eval sees it."""

import json

import gymnasium as gym
import numpy as np
from pathlib import Path

import pytest
import torch

import rlrun
from rlrun.config import ConfigError
from rlrun.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_returns_the_summary_and_load_acts_like_the_saved_policy(in_tmp):
    summary = rlrun.train(["algo=ppo_clip", "env=Pendulum-v1", "total_steps=2048", "algo.n_steps=256",
                           "env.num_envs=4", "env.normalize_obs=true", "progress=off"])
    run_dir = in_tmp / "outputs" / "ppo_clip" / "Pendulum-v1"
    assert summary["status"] == "completed" and summary["steps_done"] == 2048
    assert summary["run_dir"].startswith(str(run_dir))
    assert json.loads((next(run_dir.iterdir()) / "summary.json").read_text())["steps_done"] == 2048
    policy = rlrun.load(summary["run_dir"])
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    action = policy.act(obs)
    assert env.action_space.contains(action) and np.array_equal(action, policy.act(obs))  # deterministic
    checkpoint = load_checkpoint(Path(f"{summary['run_dir']}/checkpoints/last.pt"))
    rms = checkpoint["obs_normalizer"]  # the saved normalisation is applied: the mean of the saved actor
    normalized = np.clip((obs - rms["mean"]) / np.sqrt(rms["var"] + 1e-8), -10, 10).astype(np.float32)
    mean = policy.actor.net(torch.as_tensor(normalized)[None])[0].detach().numpy()
    np.testing.assert_allclose(action, np.clip(mean, -2.0, 2.0), rtol=1e-6)
    sampled = policy.act(obs, deterministic=False, generator=torch.Generator().manual_seed(0))
    assert not np.array_equal(sampled, action)


def test_train_resumes_and_refuses_bad_input_and_sweeps_in_one_line(in_tmp):
    first = rlrun.train(["algo=trpo", "env=CartPole-v1", "total_steps=512", "algo.n_steps=64", "progress=off"])
    resumed = rlrun.train([f"resume={first['run_dir']}", "total_steps=1024"])
    assert resumed["run_dir"] == first["run_dir"] and resumed["steps_done"] == 1024
    for bad, named in ((["algo=trpo", "algo.max_kl=-1"], "algo.max_kl"), (["algo=nope"], "algo='nope'"),
                       (["algo=trpo", "seed=0,1"], "rlrun -m"), (["-m", "algo=trpo"], "rlrun -m"),
                       ("algo=trpo", "list of override strings"), ({"algo": "trpo"}, "not dict"),
                       (b"algo=trpo", "not bytes"), ([1, 2], "list of override strings")):
        with pytest.raises(ConfigError, match=named.replace("(", r"\(")) as err:
            rlrun.train(bad)
        assert "\n" not in str(err.value)


def test_load_of_a_discrete_policy_returns_an_int(in_tmp):
    summary = rlrun.train(["algo=ppo_clip", "env=CartPole-v1", "total_steps=256", "progress=off"])
    action = rlrun.load(summary["run_dir"]).act(gym.make("CartPole-v1").reset(seed=0)[0])
    assert isinstance(action, int) and action in (0, 1)


def test_load_reads_a_checkpoint_written_before_the_newer_config_keys(in_tmp):
    """Checkpoints of earlier versions lack algo.encoder, algo.cnn_features, env.register, env.wrappers
    and tuned_file: rlrun.load (and so rlrun-eval) still rebuilds their policy."""
    summary = rlrun.train(["algo=trpo", "env=Pendulum-v1", "total_steps=256", "algo.n_steps=128", "progress=off"])
    path = f"{summary['run_dir']}/checkpoints/last.pt"
    checkpoint = load_checkpoint(Path(path))
    for key in ("encoder", "cnn_features"):
        del checkpoint["config"]["algo"][key]
    for key in ("register", "wrappers", "sign_rewards", "life_loss_terminal"):
        del checkpoint["config"]["env"][key]
    del checkpoint["config"]["tuned_file"]
    save_checkpoint(Path(path), checkpoint)
    obs, _ = gym.make("Pendulum-v1").reset(seed=0)
    assert rlrun.load(summary["run_dir"]).act(obs).shape == (1,)


def test_load_and_act_refuse_bad_input_in_one_line(in_tmp):
    summary = rlrun.train(["algo=ppo_clip", "env=CartPole-v1", "total_steps=256", "progress=off"])
    policy = rlrun.load(summary["run_dir"])
    for bad in (np.zeros((2, 4), np.float32), np.zeros(3, np.float32), None, np.array([0, np.nan, 0, 0], np.float32),
                "obs"):
        with pytest.raises(ValueError, match="Policy.act takes one observation of Box") as err:
            policy.act(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="device='gpu' is not one of cpu, cuda, auto"):
        rlrun.load(summary["run_dir"], device="gpu")
    path = Path(summary["run_dir"]) / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(path)
    checkpoint["config"] = {}
    save_checkpoint(path, checkpoint)
    with pytest.raises(CheckpointError, match="not an rlrun checkpoint"):
        rlrun.load(summary["run_dir"])
