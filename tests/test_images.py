"""Image observations: kept as uint8 CxHxW in the rollout, scaled once by the CNN, through every
algorithm (ACKTR's K-FAC on the convolution included); MinAtar through env.register."""

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

import rlrun
from rlrun.acting import ObservationEncoder
from rlrun.observations import channels_first, is_image, obs_shape
from rlrun.algos.acktr import ACKTR, ACKTRConfig
from rlrun.algos.registry import algorithms
from rlrun.networks import CNN, make_networks
from tests import space_envs
from tests.algos.common import batch_for, update


def test_image_spaces_are_recognised_and_laid_out_channels_first():
    assert not is_image(spaces.Box(0, 1, (4,))) and not is_image(spaces.Box(0, 1, (2, 2, 1)))
    assert channels_first(spaces.Box(0, 255, (4, 84, 84), np.uint8))
    assert not channels_first(spaces.Box(0, 1, (10, 10, 4), bool))  # MinAtar
    assert not channels_first(spaces.Box(0, 1, (10, 10, 10), bool))  # MinAtar Seaquest: equal sides stay HxWxC
    assert obs_shape(spaces.Box(0, 1, (10, 10, 6), bool)) == (6, 10, 10)
    frames = np.zeros((2, 10, 10, 6), bool)
    frames[1, 3, 4, 5] = True
    encoded = ObservationEncoder(spaces.Box(0, 1, (10, 10, 6), bool), None, torch.device("cpu")).tensor(frames)
    assert encoded.dtype == torch.uint8 and encoded.shape == (2, 6, 10, 10) and encoded[1, 5, 3, 4] == 1


def test_the_cnn_scales_uint8_frames_once_and_auto_picks_its_size():
    space = spaces.Box(0, 255, (12, 12, 3), np.uint8)
    actor, critic = make_networks(algorithms()["ppo_clip"].config(), space, spaces.Discrete(3))
    assert isinstance(actor.net.encoder, CNN) and actor.net.encoder is not critic.net.encoder  # separate networks
    assert actor.net.encoder.scale == 1 / 255 and actor.net.encoder.features == 128  # small_cnn below 36 pixels
    frames = torch.randint(0, 256, (5, 3, 12, 12), dtype=torch.uint8)
    encoder = actor.net.encoder
    torch.testing.assert_close(encoder(frames), torch.relu(encoder.linear(encoder.convs(frames.float() / 255))))
    big = make_networks(algorithms()["ppo_clip"].config(), spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(3))[0]
    assert big.net.encoder.features == 512 and len([m for m in big.modules() if isinstance(m, torch.nn.Conv2d)]) == 3


@pytest.mark.parametrize("algo", list(algorithms()))
def test_two_iterations_on_images_keep_uint8_frames(tmp_path, monkeypatch, algo):
    monkeypatch.chdir(tmp_path)
    summary = rlrun.train([f"algo={algo}", "env=tests.space_envs:ImageMatch-v0", "total_steps=256",
                           "algo.n_steps=32", "env.num_envs=4", "progress=off", "tuned=none"])
    assert summary["status"] == "completed"
    policy = rlrun.load(summary["run_dir"])
    env = space_envs.ImageMatch()
    assert env.action_space.contains(policy.act(env.reset(seed=0)[0]))


def test_acktr_keeps_its_trust_region_with_kfac_on_the_convolution():
    torch.manual_seed(0)
    space = spaces.Box(0, 255, (12, 12, 3), np.uint8)
    cfg = ACKTRConfig(eta_max=1.0, max_kl=0.01, ent_coef=0.0)
    actor, critic = make_networks(cfg, space, spaces.Discrete(3))
    algo = ACKTR(cfg, actor, critic, seed=0)
    assert any(isinstance(layer.module, torch.nn.Conv2d) for layer in algo.actor_kfacs[0].layers)
    batch = batch_for(actor, obs=torch.randint(0, 256, (128, 3, 12, 12), dtype=torch.uint8))
    for _ in range(3):
        metrics = update(algo, batch)
        assert 0.0 < metrics["policy/kl"] <= metrics["acktr/max_kl"] and math.isfinite(metrics["loss/value"])


def test_minatar_is_registered_by_env_register(tmp_path, monkeypatch):
    pytest.importorskip("minatar", reason="the minatar extra: pip install 'rlrun[minatar]'")
    monkeypatch.chdir(tmp_path)
    summary = rlrun.train(["algo=ppo_clip", "env=MinAtar/Breakout-v1", "total_steps=512", "algo.n_steps=32",
                           "progress=off"])
    assert summary["status"] == "completed" and summary["steps_done"] == 512


def test_atari_bookkeeping_signs_rewards_and_ends_bootstrapping_at_a_lost_life_for_training_only():
    """env.sign_rewards and env.life_loss_terminal change what the algorithm learns from, never the
    episode statistics: returns stay unclipped and an episode is the whole game."""
    from omegaconf import OmegaConf

    from rlrun.config import EnvConfig
    from rlrun.envs import make_vec_env
    from rlrun.networks import CategoricalActor, Critic
    from rlrun.rollout import RolloutCollector

    envs = make_vec_env(OmegaConf.structured(EnvConfig(id="tests.space_envs:LivesEnv-v0", num_envs=1)))
    collector = RolloutCollector(envs, CategoricalActor(2, 2, [4], "tanh", True), Critic(2, [4], "tanh", True),
                                 n_steps=12, gamma=0.99, gae_lambda=0.95, seed=0, device=torch.device("cpu"),
                                 sign_rewards=True, life_loss_terminal=True)
    _, episodes = collector.collect(0)
    assert [(e.ret, e.length) for e in episodes] == [(60.0, 12)]  # one whole game, 12 x 5, unclipped
    assert (collector.buf_rewards == 1.0).all()  # the algorithm sees sign(5) = 1
    assert np.flatnonzero(collector.buf_terminated[:, 0]).tolist() == [3, 7, 11]  # lives lost after steps 4 and 8, then the end


def test_atari_breakout_is_preprocessed_to_stacked_84x84_frames():
    pytest.importorskip("ale_py", reason="the atari extra: pip install 'rlrun[atari]'")
    pytest.importorskip("cv2", reason="the atari extra: pip install 'rlrun[atari]'")
    from hydra import compose, initialize_config_dir

    from rlrun.config import CONF_DIR, register_configs
    from rlrun.envs import make_env

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["algo=ppo_clip", "env=ALE/Breakout-v5"])
    env = make_env(cfg.env)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and info["lives"] == 5
    actor, _ = make_networks(cfg.algo, env.observation_space, env.action_space)
    assert actor.net.encoder.features == 512  # the Nature-DQN CNN
    env.close()
