"""How observation spaces are laid out for the networks (rlrun/observations.py), the composite
encoder that views a Dict's or Tuple's image leaves through CNNs, and the normaliser that leaves
one-hots and pixels alone."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlrun.acting import ObservationEncoder, make_obs_normalizer
from rlrun.algos.acktr import ACKTR, ACKTRConfig
from rlrun.algos.ppo_clip import PPOClipConfig
from rlrun.envs import EnvError, check_spaces
from rlrun.networks import CNN, CompositeEncoder, make_networks
from rlrun.observations import flatten_obs, leaf_slices, leaves, obs_dim, obs_shape, stack_obs
from tests.algos.common import batch_for, update

IMAGE = spaces.Box(0, 255, (12, 12, 3), np.uint8)  # HxWxC
NESTED = spaces.Tuple((IMAGE, spaces.Dict({"target": spaces.Discrete(3, start=1), "noise": spaces.Box(-1, 1, (2,))})))


def nested_batch(n: int, rng: np.random.Generator):
    frames = rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)
    return frames, {"target": rng.integers(1, 4, n), "noise": rng.uniform(-1, 1, (n, 2)).astype(np.float32)}


def test_leaves_follow_the_space_order_through_nesting():
    # gymnasium sorts a Dict's keys: noise before target
    assert [path for path, _ in leaves(NESTED)] == [(0,), (1, "noise"), (1, "target")]
    assert obs_dim(NESTED) == 3 * 12 * 12 + 2 + 3 and obs_shape(NESTED) == (437,)
    assert [(sl.start, sl.stop) for sl, _ in leaf_slices(NESTED)] == [(0, 432), (432, 434), (434, 437)]


def test_a_nested_tuple_flattens_to_channels_first_pixels_one_hots_and_boxes():
    frames, rest = nested_batch(4, np.random.default_rng(0))
    flat = flatten_obs((frames, rest), NESTED)
    assert flat.dtype == np.float32 and flat.shape == (4, 437)
    np.testing.assert_array_equal(flat[:, :432].reshape(4, 3, 12, 12), frames.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(flat[:, 432:434], rest["noise"])
    np.testing.assert_array_equal(flat[:, 434:], np.eye(3)[rest["target"] - 1])  # start=1 honoured


def test_multidiscrete_and_multibinary_observations_are_one_hots_and_bits():
    space = spaces.Dict({"md": spaces.MultiDiscrete([2, 3]), "mb": spaces.MultiBinary(3)})
    batch = {"md": np.array([[1, 2], [0, 0]]), "mb": np.array([[1, 0, 1], [0, 1, 0]], np.int8)}
    # keys sorted (mb, md): bits, then one one-hot per dimension
    np.testing.assert_array_equal(flatten_obs(batch, space), [[1, 0, 1, 0, 1, 0, 0, 1], [0, 1, 0, 1, 0, 1, 0, 0]])
    # gymnasium's vector envs give a dict of batches; final_obs entries are single observations
    singles = [{"md": np.array([1, 2]), "mb": np.array([1, 0, 1], np.int8)}, {"md": np.array([0, 0]), "mb": np.array([0, 1, 0], np.int8)}]
    np.testing.assert_array_equal(flatten_obs(stack_obs(singles, space), space), flatten_obs(batch, space))


def test_the_normaliser_takes_only_the_box_leaves():
    normalizer = make_obs_normalizer(NESTED, clip=10.0)
    assert list(normalizer.columns) == [432, 433]
    frames, rest = nested_batch(64, np.random.default_rng(1))
    rest["noise"] = 3.0 + 0.5 * rest["noise"]
    encoder = ObservationEncoder(NESTED, normalizer, torch.device("cpu"))
    obs = encoder((frames, rest), update=True)
    raw = flatten_obs((frames, rest), NESTED)
    np.testing.assert_array_equal(obs[:, :432], raw[:, :432])  # pixels and one-hots untouched
    np.testing.assert_array_equal(obs[:, 434:], raw[:, 434:])
    np.testing.assert_allclose(obs[:, 432:434].mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(obs[:, 432:434].std(0), 1.0, atol=1e-3)
    assert make_obs_normalizer(IMAGE, 10.0) is None and make_obs_normalizer(spaces.Discrete(3), 10.0) is None
    assert make_obs_normalizer(spaces.Box(-1, 1, (3,)), 10.0).columns is None  # a flat Box: as before


def test_the_composite_encoder_views_each_image_through_its_own_cnn():
    torch.manual_seed(0)
    actor, critic = make_networks(PPOClipConfig(), NESTED, spaces.Discrete(2))
    encoder = actor.net.encoder
    assert isinstance(encoder, CompositeEncoder) and isinstance(critic.net.encoder, CompositeEncoder)
    assert encoder is not critic.net.encoder and encoder.features == 128 + 3 + 2  # small CNN for 12x12
    frames, rest = nested_batch(5, np.random.default_rng(2))
    flat = torch.from_numpy(flatten_obs((frames, rest), NESTED))
    (cnn,) = encoder.cnns
    assert isinstance(cnn, CNN)
    expected = torch.cat([cnn(torch.from_numpy(frames).permute(0, 3, 1, 2)), flat[:, 432:]], dim=-1)
    torch.testing.assert_close(encoder(flat), expected)  # the same features as the image alone, /255 included


def test_flat_composites_keep_the_plain_mlp():
    actor, _ = make_networks(PPOClipConfig(), spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Discrete(3)}),
                             spaces.Discrete(2))
    assert actor.net.encoder is None and actor.net[0].in_features == 5
    with pytest.raises(ValueError, match="algo.encoder=nature_cnn needs image observations"):
        make_networks(PPOClipConfig(encoder="nature_cnn"), spaces.Dict({"a": spaces.Box(-1, 1, (2,))}), spaces.Discrete(2))


@pytest.mark.parametrize("override, message", [
    ("algo.encoder=nature_cnn", "algo.encoder=nature_cnn needs image observations"),
    ("algo.share_encoder=true", "algo.share_encoder=true needs image observations (a CNN to share)")])
def test_a_cnn_asked_for_on_flat_observations_is_one_line_before_the_run(run_rlrun, override, message):
    res = run_rlrun("algo=ppo_clip", "env=CartPole-v1", override, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    (line,) = [line for line in res.stderr.splitlines() if line.startswith("rlrun: error")]
    assert message in line
    assert not (run_rlrun.cwd / "outputs").exists()  # refused before any run directory was made


def test_acktr_keeps_its_trust_region_with_kfac_on_a_composite_encoders_convolution():
    torch.manual_seed(0)
    cfg = ACKTRConfig(eta_max=1.0, max_kl=0.01, ent_coef=0.0)
    actor, critic = make_networks(cfg, NESTED, spaces.Discrete(3))
    algo = ACKTR(cfg, actor, critic, seed=0)
    assert any(isinstance(layer.module, torch.nn.Conv2d) for layer in algo.actor_kfacs[0].layers)
    batch = batch_for(actor, obs=torch.from_numpy(flatten_obs(nested_batch(128, np.random.default_rng(3)), NESTED)))
    conv = next(layer.module for layer in algo.actor_kfacs[0].layers if isinstance(layer.module, torch.nn.Conv2d))
    before = conv.weight.detach().clone()
    metrics = update(algo, batch)
    assert 0.0 < metrics["policy/kl"] <= metrics["acktr/max_kl"]
    assert not torch.equal(conv.weight, before)  # the convolution is stepped too


@pytest.mark.parametrize("space", [spaces.Text(8), spaces.Dict({"ok": spaces.Box(-1, 1, (2,)), "bad": spaces.Text(4)}),
                                   spaces.Tuple((spaces.Discrete(2), spaces.Graph(spaces.Box(0, 1, (2,)), None)))])
def test_spaces_without_a_layout_are_refused_in_one_line(space):
    with pytest.raises(EnvError, match="rlrun supports Box, Discrete, MultiDiscrete, MultiBinary, or a Dict or Tuple"):
        check_spaces(space, spaces.Discrete(2), "Test-v0")
    check_spaces(NESTED, spaces.Discrete(2), "Test-v0")


def test_a_discrete_one_hot_matches_the_identity_rows_without_building_the_identity():
    from rlrun.observations import flatten_obs

    small = spaces.Discrete(5, start=-2)
    codes = np.array([-2, 0, 2])
    np.testing.assert_array_equal(flatten_obs(codes, small), np.eye(5, dtype=np.float32)[codes + 2])
    huge = spaces.Discrete(200_000)  # its identity would take 149 GiB
    out = flatten_obs(np.array([7, 199_999]), huge)
    assert out.shape == (2, 200_000) and out.dtype == np.float32
    assert out.sum() == 2 and out[0, 7] == 1 and out[1, 199_999] == 1
    md = spaces.MultiDiscrete([3, 100_000])
    out = flatten_obs(np.array([[1, 99_999]]), md)
    assert out.shape == (1, 100_003) and out[0, 1] == 1 and out[0, 3 + 99_999] == 1
