"""gSDE (networks.GSDEActor) against brute force: the marginal of mu(s) + z(s) Theta over Theta, the
closed-form log-probability, entropy and KL against Monte Carlo, the KL's Hessian (TRPO's Fisher
product) against a dense one, and the rollout's resampling of the exploration matrices."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.distributions import kl_divergence
from torch.func import functional_call

from rlrun.acting import NumpyActor
from rlrun.algos.registry import AlgoConfig
from rlrun.core.natural_gradient import flat_params, make_fisher_vector_product
from rlrun.networks import GSDEActor, make_networks
from rlrun.rollout import RolloutCollector

OBS, ACTIONS, HIDDEN = 3, 2, [5, 4]


def actor_of(seed: int = 0, dtype=torch.float64, activation: str = "tanh") -> GSDEActor:
    torch.manual_seed(seed)
    actor = GSDEActor(OBS, ACTIONS, HIDDEN, activation, ortho_init=False, log_std_init=-0.5).to(dtype)
    with torch.no_grad():  # a log-std matrix with distinct entries
        actor.log_std.add_(0.3 * torch.randn_like(actor.log_std))
    return actor


def test_actions_over_many_matrices_have_the_marginal_mean_and_std():
    actor = actor_of()
    obs = torch.randn(1, OBS, dtype=torch.float64).expand(200_000, OBS)  # one state, one matrix per row
    actor.reset_noise(len(obs))
    with torch.no_grad():
        actions = actor.act(obs)
        pi = actor.distribution_of(obs[:1])
    n = len(actions)
    assert torch.allclose(actions.mean(0), pi.mean[0], atol=4 * pi.stddev[0].max().item() / math.sqrt(n))
    assert torch.allclose(actions.std(0), pi.stddev[0], rtol=0.01)


def test_a_matrix_kept_gives_a_deterministic_function_of_the_state():
    actor = actor_of()
    obs = torch.randn(4, OBS, dtype=torch.float64)
    actor.reset_noise(4)
    with torch.no_grad():
        first, again = actor.act(obs), actor.act(obs)
        actor.reset_noise(4)
        other = actor.act(obs)
        mean = actor.act(obs, deterministic=True)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert torch.allclose(mean, actor.distribution_of(obs).mean.detach())


def test_log_prob_and_entropy_are_the_marginal_gaussians():
    actor = actor_of()
    obs, actions = torch.randn(6, OBS, dtype=torch.float64), torch.randn(6, ACTIONS, dtype=torch.float64)
    log_prob, entropy = actor.log_prob_entropy(obs, actions)
    pi = actor.distribution_of(obs)
    hidden = actor.net.fast_hidden(obs)
    var = hidden.pow(2) @ torch.exp(2 * actor.log_std) + actor.EPS  # sum_i z_i^2 sigma_ij^2, written out
    assert torch.allclose(pi.variance, var)
    assert torch.allclose(log_prob, pi.log_prob(actions))
    assert torch.allclose(entropy, pi.entropy())
    assert torch.allclose(actor(obs).log_prob(actions), log_prob)  # the module path (K-FAC's) agrees


def test_entropy_and_kl_match_monte_carlo():
    old, new = actor_of(0), actor_of(1)
    obs = torch.randn(3, OBS, dtype=torch.float64)
    with torch.no_grad():
        p, q = old.distribution_of(obs), new.distribution_of(obs)
        samples = p.sample((400_000,))  # [n, 3, actions]
        log_p, log_q = p.log_prob(samples), q.log_prob(samples)
    mc_entropy, mc_kl = -log_p.mean(0), (log_p - log_q).mean(0)
    se_entropy, se_kl = log_p.std(0) / math.sqrt(len(samples)), (log_p - log_q).std(0) / math.sqrt(len(samples))
    assert torch.all((mc_entropy - p.entropy()).abs() < 4 * se_entropy)
    assert torch.all((mc_kl - kl_divergence(p, q)).abs() < 4 * se_kl)


def test_fisher_vector_product_is_the_dense_kl_hessian():
    actor = actor_of()
    obs = torch.randn(8, OBS, dtype=torch.float64)
    with torch.no_grad():
        pi_old = actor.distribution_of(obs)
    names = [name for name, _ in actor.named_parameters()]
    shapes = [p.shape for p in actor.parameters()]
    sizes = [p.numel() for p in actor.parameters()]

    def mean_kl(theta):
        params = {n: c.view(s) for n, c, s in zip(names, theta.split(sizes), shapes)}
        return kl_divergence(pi_old, functional_call(actor, params, (obs,), {}, strict=False)).mean()

    dense = torch.autograd.functional.hessian(mean_kl, flat_params(actor.parameters()))
    fvp = make_fisher_vector_product(kl_divergence(pi_old, actor.distribution_of(obs)).mean(),
                                     list(actor.parameters()), damping=0.0)
    v = torch.randn(dense.shape[0], dtype=torch.float64)
    assert torch.allclose(fvp(v), dense @ v, atol=1e-10)
    log_std_rows = slice(sum(sizes[:-1]), sum(sizes))  # log_std is the last parameter
    assert dense[log_std_rows, log_std_rows].abs().sum() > 0  # the exploration's own block is there


def test_numpy_rollout_path_is_the_torch_act():
    actor = actor_of(dtype=torch.float32, activation="relu")
    obs = torch.randn(5, OBS)
    actor.reset_noise(5)
    with torch.no_grad():
        expected = actor.act(obs).numpy()
    np.testing.assert_allclose(NumpyActor(actor).act(obs.numpy()), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("freq,draws", [(-1, 1), (4, 3), (1, 10)])
def test_the_rollout_draws_matrices_at_its_start_and_every_sde_sample_freq_steps(freq, draws):
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1")] * 2)
    cfg = AlgoConfig(name="test", use_sde=True, sde_sample_freq=freq, hidden_sizes=[8])
    actor, critic = make_networks(OmegaConf.structured(cfg), envs.single_observation_space, envs.single_action_space)
    drawn = []
    reset = actor.reset_noise
    actor.reset_noise = lambda n, generator=None: (drawn.append(n), reset(n, generator))
    collector = RolloutCollector(envs, actor, critic, n_steps=10, gamma=0.99, gae_lambda=0.95, seed=0,
                                 device=torch.device("cpu"), sde_sample_freq=freq)
    collector.collect(0)
    assert drawn == [2] * draws  # one matrix per env each time
    envs.close()


def test_use_sde_with_discrete_actions_is_refused_in_one_line():
    cfg = OmegaConf.structured(AlgoConfig(name="test", use_sde=True))
    space = gym.spaces.Box(-1, 1, (3,))
    with pytest.raises(ValueError, match=r"^algo.use_sde=true needs Box \(continuous\) actions, not Discrete\(2\)$"):
        make_networks(cfg, space, gym.spaces.Discrete(2))


def test_a_gsde_run_saves_a_policy_that_loads_and_acts(run_rlrun):
    import rlrun

    res = run_rlrun("algo=ppo_clip", "env=Pendulum-v1", "algo.use_sde=true", "algo.n_steps=64", "env.num_envs=2",
                    "total_steps=256", "progress=off", "hydra.run.dir=run")
    assert res.returncode == 0, res.stderr
    policy = rlrun.load(run_rlrun.cwd / "run")
    assert policy.actor.distribution == "gsde" and policy.actor.log_std.shape == (64, 1)
    obs = np.array([1.0, 0.0, 0.5], np.float32)
    assert policy.act(obs).shape == (1,)
    generator = torch.Generator().manual_seed(0)
    assert np.isfinite(policy.act(obs, deterministic=False, generator=generator)).all()
    resumed = run_rlrun("resume=run", "total_steps=512", "progress=off")
    assert resumed.returncode == 0, resumed.stderr
