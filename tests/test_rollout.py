"""The rollout collector: time-limit bootstrap, raw episode statistics, action clipping."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils import EzPickle
from omegaconf import OmegaConf

from rlrun.config import EnvConfig
from rlrun.envs import make_vec_env, step_envs
from rlrun.networks import Critic, GaussianActor
from rlrun.normalization import RewardNormalizer
from rlrun.rollout import RolloutCollector


class ForeverEnv(gym.Env):
    """Never terminates; reward 1 every step; a constant observation. Only a TimeLimit ends it."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.last_action = np.array(action)
        return np.zeros(1, np.float32), 1.0, False, False, {}


gym.register("rlrun-test/Forever-v0", entry_point=ForeverEnv, max_episode_steps=20)
GAMMA = 0.9


def make(num_envs=2, n_steps=50, reward_normalizer=None, seed=0):
    torch.manual_seed(seed)
    envs = make_vec_env(OmegaConf.structured(EnvConfig(id="rlrun-test/Forever-v0", num_envs=num_envs)))
    actor = GaussianActor(1, 1, [8], "tanh", True, 0.0)
    critic = Critic(1, [8], "tanh", True)
    collector = RolloutCollector(envs, actor, critic, n_steps=n_steps, gamma=GAMMA, gae_lambda=0.95, seed=seed,
                                 device=torch.device("cpu"), reward_normalizer=reward_normalizer)
    return collector, critic


def test_truncated_episodes_bootstrap_so_an_exact_critic_is_a_fixed_point():
    collector, critic = make()
    with torch.no_grad():
        critic.net[-1].weight.zero_()
        critic.net[-1].bias.fill_(1.0 / (1.0 - GAMMA))  # V = 1/(1-gamma) exactly
    batch, episodes = collector.collect(0)
    assert len(episodes) == 4  # 2 envs x 50 steps, truncated every 20 steps
    # If truncation were treated as termination, the return at a truncation step would be 1.
    torch.testing.assert_close(batch.returns, torch.full_like(batch.returns, 10.0), rtol=1e-5, atol=1e-4)


def test_value_of_s0_learned_under_time_limit_is_near_the_infinite_horizon_value():
    collector, critic = make(num_envs=4, n_steps=64)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-2)
    for _ in range(150):
        batch, _ = collector.collect(0)
        for _ in range(5):
            loss = (critic(batch.obs) - batch.returns).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    v0 = critic(torch.zeros(1, 1)).item()
    assert abs(v0 - 1.0 / (1.0 - GAMMA)) < 0.5, v0  # without the bootstrap V(s0) is about 7.0


def test_episode_statistics_are_raw_rewards_even_with_reward_normalisation():
    collector, _ = make(n_steps=40, reward_normalizer=RewardNormalizer(2, GAMMA, clip=10.0))
    batch, episodes = collector.collect(0)
    assert [e.ret for e in episodes] == [20.0] * 4
    assert [e.length for e in episodes] == [20] * 4
    assert sorted(e.step for e in episodes) == [40, 40, 80, 80]
    assert not np.allclose(collector.buf_rewards, 1.0)


def test_gaussian_actions_are_stored_unclipped_and_clipped_for_the_env():
    collector, _ = make(n_steps=30)
    with torch.no_grad():
        collector.actor.log_std.fill_(2.0)  # std 7.4: most samples fall outside [-1, 1]
    batch, _ = collector.collect(0)
    assert batch.actions.abs().max() > 1.0
    sent = np.stack([env.unwrapped.last_action for env in collector.envs.envs])
    assert np.abs(sent).max() <= 1.0
    last_stored = batch.actions.view(30, 2, 1)[-1].numpy()
    np.testing.assert_array_equal(sent, np.clip(last_stored, -1.0, 1.0))


def test_batch_log_probs_are_those_of_the_collecting_policy():
    """log pi_old(a|s) is computed after the loop, batched; it must equal the per-sample log-density
    of the stored (unclipped) actions under the policy that sampled them, for both heads."""
    from rlrun.networks import CategoricalActor

    collector, _ = make(n_steps=30)
    batch, _ = collector.collect(0)
    with torch.no_grad():
        expected = collector.actor(batch.obs).log_prob(batch.actions)
    torch.testing.assert_close(batch.log_probs, expected)
    envs = make_vec_env(OmegaConf.structured(EnvConfig(id="CartPole-v1", num_envs=3)))
    actor, critic = CategoricalActor(4, 2, [8], "tanh", True), Critic(4, [8], "tanh", True)
    batch, _ = RolloutCollector(envs, actor, critic, n_steps=40, gamma=GAMMA, gae_lambda=0.95, seed=0,
                                device=torch.device("cpu")).collect(0)
    with torch.no_grad():
        expected = actor(batch.obs).log_prob(batch.actions)
    torch.testing.assert_close(batch.log_probs, expected)
    assert batch.log_probs.shape == (120,)


def test_a_shared_cnn_runs_once_per_step_and_never_over_the_whole_batch():
    """With the CNN shared by actor and critic, the rollout keeps its features of each step's
    observations and takes log pi_old, V and pi_old (``Batch.pi_old``, from which the trainer's
    exact policy/kl starts) from them: no pass of the CNN over the batch, and the same values as a
    fresh pass (up to the float rounding of another batch size). Without sharing, no pi_old."""
    from rlrun.algos.ppo_clip import PPOClipConfig
    from rlrun.core.diagnostics import policy_snapshot
    from rlrun.networks import make_networks

    envs = make_vec_env(OmegaConf.structured(EnvConfig(id="tests.space_envs:ImageMatch-v0", num_envs=2)))
    for share in (True, False):
        cfg = OmegaConf.structured(PPOClipConfig(share_encoder=share, hidden_sizes=[]))
        torch.manual_seed(0)
        actor, critic = make_networks(cfg, envs.single_observation_space, envs.single_action_space)
        collector = RolloutCollector(envs, actor, critic, n_steps=16, gamma=GAMMA, gae_lambda=0.95, seed=0,
                                     device=torch.device("cpu"))
        batch_sizes = []
        hook = actor.net.encoder.register_forward_hook(lambda module, args, out: batch_sizes.append(len(args[0])))
        batch, _ = collector.collect(0)
        hook.remove()
        assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (32, 3, 12, 12)
        with torch.no_grad():
            fresh = actor(batch.obs)
            torch.testing.assert_close(batch.log_probs, fresh.log_prob(batch.actions))
            torch.testing.assert_close(batch.values, critic(batch.obs))
        if share:
            # each step, V(final obs) of the truncated episodes and V(s_T): never the batch of 32
            assert len(batch_sizes) >= 16 and set(batch_sizes) == {2}
            torch.testing.assert_close(batch.pi_old.logits, fresh.logits)
            assert policy_snapshot(actor, batch) is batch.pi_old
        else:
            assert 32 in batch_sizes and batch.pi_old is None


class OffsetActionsEnv(gym.Env):
    """Discrete(3, start=1): records every action it receives; an action outside 1..3 is an error."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(3, start=1)
    received: list[int] = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        OffsetActionsEnv.received.append(int(action))
        return np.zeros(1, np.float32), float(action), False, False, {}


gym.register("rlrun-test/OffsetActions-v0", entry_point=OffsetActionsEnv, max_episode_steps=10)


def test_discrete_start_is_added_to_the_actions_sent_in_training_and_evaluation():
    from rlrun.evaluation import evaluate
    from rlrun.networks import CategoricalActor
    from rlrun.policy import Policy

    torch.manual_seed(0)
    OffsetActionsEnv.received.clear()
    envs = make_vec_env(OmegaConf.structured(EnvConfig(id="rlrun-test/OffsetActions-v0", num_envs=2)))
    actor, critic = CategoricalActor(1, 3, [8], "tanh", True), Critic(1, [8], "tanh", True)
    collector = RolloutCollector(envs, actor, critic, n_steps=200, gamma=GAMMA, gae_lambda=0.95, seed=0,
                                 device=torch.device("cpu"))
    batch, _ = collector.collect(0)
    assert set(OffsetActionsEnv.received) == {1, 2, 3}  # every action, none outside the space
    assert set(batch.actions.tolist()) == {0, 1, 2}  # the policy's own indices are what is stored
    OffsetActionsEnv.received.clear()
    env = gym.make("rlrun-test/OffsetActions-v0")
    evaluate(Policy(actor, env.observation_space, env.action_space), env, episodes=3, deterministic=False, seed=0)
    assert set(OffsetActionsEnv.received) == {1, 2, 3}


class RebuiltByPickleEnv(gym.Env, EzPickle):
    """Pickles like Box2D and MuJoCo envs (EzPickle: a new instance from the constructor arguments,
    without its state), and like LunarLander refuses a step before reset."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        EzPickle.__init__(self)
        self.ready = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.ready = True
        return np.zeros(1, np.float32), {}

    def step(self, action):
        assert self.ready, "step before reset"
        return np.zeros(1, np.float32), 1.0, False, False, {}


gym.register("rlrun-test/RebuiltByPickle-v0", entry_point=RebuiltByPickleEnv, max_episode_steps=20)


def test_envs_that_pickle_without_their_state_are_reset_on_resume():
    envs = make_vec_env(OmegaConf.structured(EnvConfig(id="rlrun-test/RebuiltByPickle-v0", num_envs=2)))
    actor, critic = GaussianActor(1, 1, [8], "tanh", True, 0.0), Critic(1, [8], "tanh", True)
    collector = RolloutCollector(envs, actor, critic, n_steps=8, gamma=GAMMA, gae_lambda=0.95, seed=0,
                                 device=torch.device("cpu"))
    collector.collect(0)
    state = collector.state_dict()
    assert state["envs"] is None  # its state is in no data attribute: reset on resume
    resumed = RolloutCollector(make_vec_env(OmegaConf.structured(EnvConfig(id="rlrun-test/RebuiltByPickle-v0",
                                                                           num_envs=2))),
                               actor, critic, n_steps=8, gamma=GAMMA, gae_lambda=0.95, seed=0,
                               device=torch.device("cpu"))
    resumed.load_state_dict(state, seed=1)
    batch, _ = resumed.collect(16)  # steps after the reset, no "step before reset"
    assert len(batch) == 16


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)


@pytest.mark.parametrize("env_id, max_steps", [("CartPole-v1", 30), ("Pendulum-v1", 7), ("LivesEnv-v0", None),
                                               ("DictMatch-v0", 5), ("TupleImageMatch-v0", 5)])
def test_step_envs_gives_what_gymnasiums_sync_vector_env_gives(env_id, max_steps):
    """step_envs steps a SyncVectorEnv's sub-environments itself: the same observations, rewards,
    terminations, truncations, final observations and lives as SyncVectorEnv.step (SAME_STEP), over
    several episode ends, for Box, Dict and Tuple observations."""
    import tests.space_envs  # noqa: F401 - registers the test envs

    cfg = OmegaConf.structured(EnvConfig(id=env_id, num_envs=3, max_episode_steps=max_steps))
    ours, theirs = make_vec_env(cfg), make_vec_env(cfg)
    assert _same(ours.reset(seed=3)[0], theirs.reset(seed=3)[0])
    theirs.action_space.seed(0)
    ends = 0
    for _ in range(40):
        actions = theirs.action_space.sample()
        step = step_envs(ours, actions)
        obs, rewards, terminated, truncated, info = theirs.step(actions)
        assert _same(step.obs, obs) and _same(step.rewards, rewards)
        assert _same(step.terminated, terminated) and _same(step.truncated, truncated)
        done = np.flatnonzero(terminated | truncated)
        assert sorted(step.final_obs) == done.tolist()
        assert all(_same(step.final_obs[i], info["final_obs"][i]) for i in done)
        assert _same(step.lives, info["lives"]) if "lives" in info else step.lives is None
        ends += len(done)
    assert ends >= 3  # episodes ended and were reset on the way


@pytest.mark.parametrize("env_id, head", [("CartPole-v1", "categorical"), ("Pendulum-v1", "gaussian")])
def test_the_batch_of_several_seeds_from_one_pass_is_each_seed_s_own(env_id, head):
    """``seeds_batch``: the stacked batch of three seeds' rollouts (stacked networks, GAE over all
    their envs) against each collector's own; CartPole's rollouts end episodes by termination,
    Pendulum's by truncation at 200 steps (bootstrapped from V of the final observation)."""
    from rlrun.networks import CategoricalActor
    from rlrun.rollout import seeds_batch

    collectors = []
    for seed in range(3):
        torch.manual_seed(seed)
        envs = make_vec_env(OmegaConf.structured(EnvConfig(id=env_id, num_envs=2)))
        obs_dim = envs.single_observation_space.shape[0]
        actor = (CategoricalActor(obs_dim, 2, [16, 16], "tanh", True) if head == "categorical"
                 else GaussianActor(obs_dim, 1, [16, 16], "tanh", True, -0.5))
        collector = RolloutCollector(envs, actor, Critic(obs_dim, [16, 16], "tanh", True), n_steps=120, gamma=GAMMA,
                                     gae_lambda=0.95, seed=seed, device=torch.device("cpu"))
        collector.run_envs(0)
        collector.run_envs(240)  # Pendulum: every env truncated at its step 200
        collectors.append(collector)
    assert any(c.buf_done.any() for c in collectors)
    together = seeds_batch(collectors)
    for s, collector in enumerate(collectors):
        alone = collector.batch()
        for key in ("obs", "actions"):
            assert torch.equal(getattr(together, key)[s], getattr(alone, key))
        for key in ("log_probs", "values", "advantages", "returns"):  # batched products: float32 rounding
            torch.testing.assert_close(getattr(together, key)[s], getattr(alone, key), rtol=1e-5, atol=1e-5)
        # pi_old of every seed, from the same pass: the diagnostics' snapshot
        torch.testing.assert_close(together.pi_old.log_prob(together.actions)[s], alone.log_probs, rtol=1e-5, atol=1e-5)
