"""The MultiDiscrete (factorised Categorical) and MultiBinary (factorised Bernoulli) heads against
dense references: log-prob, entropy, KL and sampling per dimension, the Fisher that TRPO's
Fisher-vector product and ACKTR's sampled Fisher use, and what the env is sent."""

import itertools

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.distributions import Bernoulli, Categorical, kl_divergence

from rlrun.acting import ActionDecoder, action_buffer
from rlrun.observations import flatten_obs, obs_dim
from rlrun.core.distributions import index_distribution
from rlrun.core.natural_gradient import make_fisher_vector_product
from rlrun.networks import BernoulliActor, CategoricalActor, MultiCategoricalActor

NVEC = [2, 3, 4]


@pytest.fixture(autouse=True)
def float64():
    """Dense references to 1e-10: this module's tests run in float64."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def per_dim_categoricals(actor: MultiCategoricalActor, obs):
    flat = actor.net(obs)
    return [Categorical(logits=part) for part in flat.split(NVEC, dim=-1)]


def test_multicategorical_log_prob_entropy_and_kl_are_sums_of_per_dimension_categoricals():
    torch.manual_seed(0)
    actor, other = MultiCategoricalActor(5, NVEC, [8], "tanh", False), MultiCategoricalActor(5, NVEC, [8], "tanh", False)
    obs = torch.randn(16, 5)
    actions = torch.stack([torch.randint(n, (16,)) for n in NVEC], dim=-1)
    dist, parts = actor(obs), per_dim_categoricals(actor, obs)
    expected_log_prob = sum(p.log_prob(actions[:, d]) for d, p in enumerate(parts))
    torch.testing.assert_close(dist.log_prob(actions), expected_log_prob)
    torch.testing.assert_close(dist.entropy(), sum(p.entropy() for p in parts))
    log_prob, entropy = actor.log_prob_entropy(obs, actions)  # the fast path, without a Distribution
    torch.testing.assert_close(log_prob, expected_log_prob)
    torch.testing.assert_close(entropy, dist.entropy())
    kl = kl_divergence(dist, other(obs))
    expected_kl = sum(kl_divergence(p, q) for p, q in zip(parts, per_dim_categoricals(other, obs)))
    torch.testing.assert_close(kl, expected_kl)
    idx = torch.tensor([3, 0, 7])
    torch.testing.assert_close(index_distribution(dist, idx).log_prob(actions[idx]), dist.log_prob(actions)[idx])


def test_bernoulli_log_prob_entropy_and_kl_are_sums_of_per_bit_bernoullis():
    torch.manual_seed(1)
    actor, other = BernoulliActor(5, 4, [8], "tanh", False), BernoulliActor(5, 4, [8], "tanh", False)
    obs = torch.randn(16, 5)
    actions = torch.randint(2, (16, 4)).double()
    logits = actor.net(obs)
    bits = [Bernoulli(logits=logits[:, i]) for i in range(4)]
    expected = sum(b.log_prob(actions[:, i]) for i, b in enumerate(bits))
    log_prob, entropy = actor.log_prob_entropy(obs, actions)
    torch.testing.assert_close(actor(obs).log_prob(actions), expected)
    torch.testing.assert_close(log_prob, expected)
    torch.testing.assert_close(entropy, sum(b.entropy() for b in bits))
    other_logits = other.net(obs)
    expected_kl = sum(kl_divergence(b, Bernoulli(logits=other_logits[:, i])) for i, b in enumerate(bits))
    torch.testing.assert_close(kl_divergence(actor(obs), other(obs)), expected_kl)
    idx = torch.tensor([2, 9])
    torch.testing.assert_close(index_distribution(actor(obs), idx).log_prob(actions[idx]), expected[idx])


@pytest.mark.parametrize("head", ["multicategorical", "bernoulli"])
def test_act_takes_the_mode_or_samples_each_dimension_with_its_probability(head):
    torch.manual_seed(2)
    obs = torch.randn(1, 5).expand(20000, 5)
    if head == "multicategorical":
        actor = MultiCategoricalActor(5, NVEC, [8], "tanh", False)
        probs = [p.probs[0] for p in per_dim_categoricals(actor, obs[:1])]
        mode = actor.act(obs[:1], deterministic=True)[0]
        assert mode.tolist() == [int(p.argmax()) for p in probs]
        samples = actor.act(obs, generator=torch.Generator().manual_seed(0))
        for d, p in enumerate(probs):
            freq = torch.bincount(samples[:, d], minlength=NVEC[d]).double() / len(samples)
            torch.testing.assert_close(freq, p, atol=0.015, rtol=0)
    else:
        actor = BernoulliActor(5, 4, [8], "tanh", False)
        with torch.no_grad():
            actor.net.linears[-1].bias.copy_(torch.tensor([-1.0, 0.2, 1.5, -0.3]))
        p = torch.sigmoid(actor.net(obs[:1]))[0]
        assert actor.act(obs[:1], deterministic=True)[0].tolist() == (p > 0.5).double().tolist()
        samples = actor.act(obs, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(samples.mean(0), p.detach(), atol=0.015, rtol=0)


def all_actions(head: str):
    if head == "categorical":
        return torch.arange(3)
    if head == "multicategorical":
        return torch.tensor(list(itertools.product(*[range(n) for n in NVEC])))
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))


def make_head(head: str):
    torch.manual_seed(3)
    if head == "categorical":
        return CategoricalActor(2, 3, [3], "tanh", False)
    if head == "multicategorical":
        return MultiCategoricalActor(2, NVEC, [3], "tanh", False)
    return BernoulliActor(2, 3, [3], "tanh", False)


@pytest.mark.parametrize("head", ["categorical", "multicategorical", "bernoulli"])
def test_kl_hessian_is_the_fisher_built_by_enumerating_every_joint_action(head):
    """TRPO's Fisher-vector product (the Hessian of the mean KL at theta_old) equals
    E_s sum_a pi(a|s) grad log pi(a|s) grad log pi(a|s)^T, summed densely over all joint actions:
    the Fisher ACKTR's K-FAC samples from too."""
    actor = make_head(head)
    params = list(actor.parameters())
    n = sum(p.numel() for p in params)
    obs = torch.randn(4, 2)
    with torch.no_grad():
        pi_old = actor(obs)
    fvp = make_fisher_vector_product(kl_divergence(pi_old, actor(obs)).mean(), params, damping=0.0)
    hessian = torch.stack([fvp(column) for column in torch.eye(n)])
    fisher = torch.zeros(n, n)
    for s in obs:
        dist = actor(s[None])
        for a in all_actions(head):
            log_prob = dist.log_prob(a[None])[0]
            g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(log_prob, params, retain_graph=True)])
            fisher += log_prob.exp().detach() * torch.outer(g, g)
    fisher /= len(obs)
    torch.testing.assert_close(hessian, fisher, atol=1e-10, rtol=1e-8)


def test_decoder_sends_what_the_env_takes():
    multi = spaces.MultiDiscrete([2, 3], start=[1, -1])
    decoded = ActionDecoder(multi)(np.array([[0, 2], [1, 0]]))
    assert decoded.tolist() == [[1, 1], [2, -1]] and all(multi.contains(a) for a in decoded)
    binary = spaces.MultiBinary([2, 2])
    decoded = ActionDecoder(binary)(np.array([[1.0, 0.0, 0.0, 1.0]], np.float32))
    assert decoded.shape == (1, 2, 2) and decoded.dtype == np.int8 and binary.contains(decoded[0])
    assert action_buffer(multi) == ((2,), np.int64) and action_buffer(binary) == ((4,), np.float32)


def test_dict_observations_are_each_key_encoded_and_concatenated_in_key_order():
    space = spaces.Dict({"position": spaces.Box(-1.0, 1.0, (2,)), "room": spaces.Discrete(3, start=1)})
    batch = {"position": np.array([[0.5, -0.5], [0.1, 0.2]], np.float32), "room": np.array([3, 1])}
    assert obs_dim(space) == 5
    expected = np.array([[0.5, -0.5, 0, 0, 1], [0.1, 0.2, 1, 0, 0]], np.float32)
    np.testing.assert_array_equal(flatten_obs(batch, space), expected)
