"""Policy heads and networks."""

import math

import pytest
import torch
from torch.distributions import kl_divergence

from rlrun.networks import BernoulliActor, CategoricalActor, Critic, GaussianActor, MultiCategoricalActor, mlp


def test_categorical_head_shapes_and_probabilities():
    actor = CategoricalActor(4, 3, [16, 16], "tanh", True)
    dist = actor(torch.randn(5, 4))
    a = dist.sample()
    assert a.shape == (5,) and dist.log_prob(a).shape == (5,)
    torch.testing.assert_close(dist.probs.sum(-1), torch.ones(5))


def test_gaussian_head_has_state_independent_log_std():
    actor = GaussianActor(3, 2, [16], "tanh", True, log_std_init=-0.5)
    dist = actor(torch.randn(7, 3))
    a = dist.sample()
    assert a.shape == (7, 2) and dist.log_prob(a).shape == (7,)
    torch.testing.assert_close(dist.base_dist.scale, torch.full((7, 2), math.exp(-0.5)))
    # log prob of a diagonal Gaussian is the sum over action dims
    mean, std = dist.base_dist.loc, dist.base_dist.scale
    manual = (-0.5 * ((a - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(dist.log_prob(a), manual)


def test_closed_form_kl_matches_monte_carlo_for_both_heads():
    torch.manual_seed(0)
    for actor in (CategoricalActor(2, 4, [8], "tanh", False), GaussianActor(2, 2, [8], "tanh", False, 0.0)):
        obs = torch.randn(1, 2)
        p = actor(obs)
        with torch.no_grad():
            for param in actor.parameters():
                param.add_(0.3 * torch.randn_like(param))
        q = actor(obs)
        x = p.sample((200_000,))
        mc = (p.log_prob(x) - q.log_prob(x)).mean()
        torch.testing.assert_close(kl_divergence(p, q).detach().squeeze(), mc.detach(), rtol=0.05, atol=5e-3)


def test_orthogonal_init_and_separate_critic():
    net = mlp(4, [64, 64], 2, "tanh", out_gain=0.01, ortho_init=True)
    w = net[2].weight  # hidden 64x64 with gain sqrt(2)
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(64), atol=1e-5, rtol=0)
    assert torch.all(net[0].bias == 0)
    critic, actor = Critic(4, [8], "tanh", True), CategoricalActor(4, 2, [8], "tanh", True)
    assert not set(map(id, critic.parameters())) & set(map(id, actor.parameters()))
    assert critic(torch.randn(3, 4)).shape == (3,)


def test_rollout_fast_paths_match_the_modules():
    torch.manual_seed(0)
    obs = torch.randn(6, 3)
    for actor in (CategoricalActor(3, 4, [8, 8], "relu", True), GaussianActor(3, 2, [8], "tanh", True, -0.3)):
        torch.testing.assert_close(actor.net.fast_forward(obs), actor.net(obs))
        action = actor.act(obs)
        log_prob, entropy = actor.log_prob_entropy(obs, action)
        torch.testing.assert_close(log_prob, actor(obs).log_prob(action))
        torch.testing.assert_close(entropy, actor(obs).entropy())
    critic = Critic(3, [8], "tanh", True)
    torch.testing.assert_close(critic.value(obs), critic(obs))


def test_categorical_act_samples_the_softmax():
    torch.manual_seed(0)
    actor = CategoricalActor(2, 3, [4], "tanh", False)
    obs = torch.zeros(200_000, 2)
    actions = actor.act(obs)
    freq = torch.bincount(actions, minlength=3).float() / len(actions)
    torch.testing.assert_close(freq, actor(obs[:1]).probs[0].detach(), atol=5e-3, rtol=0)


def test_gaussian_act_samples_mean_and_std():
    torch.manual_seed(0)
    actor = GaussianActor(2, 2, [4], "tanh", False, log_std_init=-1.0)
    obs = torch.zeros(200_000, 2)
    actions = actor.act(obs)
    torch.testing.assert_close(actions.mean(0), actor(obs[:1]).base_dist.loc[0].detach(), atol=5e-3, rtol=0)
    torch.testing.assert_close(actions.std(0), torch.full((2,), math.exp(-1.0)), atol=5e-3, rtol=0)


def test_index_distribution_selects_rows_of_both_heads():
    from rlrun.core.distributions import index_distribution

    obs, idx = torch.randn(7, 3), torch.tensor([4, 0, 2])
    for actor in (CategoricalActor(3, 4, [8], "tanh", True), GaussianActor(3, 2, [8], "tanh", True, 0.0)):
        a = actor(obs[idx]).sample()
        torch.testing.assert_close(index_distribution(actor(obs), idx).log_prob(a), actor(obs[idx]).log_prob(a))


def test_explained_variance_of_equal_returns_is_left_out_not_a_failure():
    """A batch whose returns are all equal (a solved deterministic task) has no explained variance:
    the diagnostics leave it out instead of logging NaN, which the trainer would stop the run for."""
    from rlrun.core.batch import Batch
    from rlrun.core.diagnostics import policy_snapshot, update_diagnostics
    from rlrun.networks import CategoricalActor

    actor = CategoricalActor(2, 3, [4], "tanh", True)
    obs = torch.randn(8, 2)
    constant = Batch(obs=obs, actions=torch.zeros(8, dtype=torch.long), log_probs=torch.zeros(8),
                     values=torch.zeros(8), advantages=torch.ones(8), returns=torch.ones(8))
    metrics = update_diagnostics(actor, policy_snapshot(actor, constant), constant, "policy")
    assert "value/explained_variance" not in metrics and metrics["policy/kl"] == 0.0
    varied = Batch(**{**constant.__dict__, "returns": torch.arange(8.0)})
    assert "value/explained_variance" in update_diagnostics(actor, policy_snapshot(actor, varied), varied, "policy")


def test_a_shared_encoder_runs_once_for_both_heads_with_the_same_outputs():
    """shared_features: the features once, then every head's fast path from them, equal to the
    heads run on the observations; separate encoders (or none) pass the observations through."""
    import numpy as np
    from gymnasium import spaces

    from rlrun.algos.registry import algorithms
    from rlrun.core.shared_encoder import shared_features
    from rlrun.networks import make_networks

    space = spaces.Box(0, 255, (6, 6, 2), np.uint8)
    frames = torch.randint(0, 256, (5, 2, 6, 6), dtype=torch.uint8)
    actions = torch.randint(0, 3, (5,))
    for share in (True, False):
        cfg = algorithms()["ppo_clip"].config(share_encoder=share, cnn_features=8)
        actor, critic = make_networks(cfg, space, spaces.Discrete(3))
        inputs, encoded = shared_features(actor, critic, frames)
        assert encoded == share and (inputs.shape == (5, 8) if share else inputs is frames)
        for got, want in zip(actor.log_prob_entropy(inputs, actions, encoded), actor.log_prob_entropy(frames, actions)):
            torch.testing.assert_close(got, want)
        torch.testing.assert_close(critic.value(inputs, encoded), critic.value(frames))
        if share:  # the module path (K-FAC's) from the features too
            torch.testing.assert_close(critic.head(actor.net.encode(frames)), critic(frames))


@pytest.mark.parametrize("make, actions", [
    (lambda: CategoricalActor(5, 3, [16, 16], "tanh", True), lambda n: torch.randint(0, 3, (n,))),
    (lambda: MultiCategoricalActor(5, [2, 4], [16], "relu", True), lambda n: torch.stack(
        [torch.randint(0, 2, (n,)), torch.randint(0, 4, (n,))], -1)),
    (lambda: BernoulliActor(5, 3, [16], "tanh", True), lambda n: torch.randint(0, 2, (n, 3)).float()),
    (lambda: GaussianActor(5, 2, [16, 16], "tanh", True, -0.5), lambda n: torch.randn(n, 2)),
])
def test_the_fast_distribution_is_the_module_forwards(make, actions):
    """actor.distribution_of(obs) (the diagnostics' path) gives what actor(obs) gives, to float32
    rounding: outside autograd its tanh runs through numpy (core.activations), whose float32 tanh
    differs from torch's in the last place on some CPUs (AVX512) and equals it on others."""
    torch.manual_seed(0)
    actor, obs = make(), torch.randn(32, 5)
    a = actions(32)
    with torch.no_grad():
        slow, fast = actor(obs), actor.distribution_of(obs)
        torch.testing.assert_close(fast.log_prob(a), slow.log_prob(a), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(fast.entropy(), slow.entropy(), rtol=1e-6, atol=1e-6)


def test_sampling_with_a_generator_draws_each_head_s_distribution_and_not_the_global_stream():
    """core.distributions.sample: the same draws from the same generator, whatever torch's global
    generator does, with each head's distribution (mean and frequencies over 20,000 draws)."""
    from torch.distributions import Bernoulli, Categorical, Independent, Normal

    from rlrun.core.distributions import sample

    n = 20_000
    heads = {
        "categorical": Categorical(probs=torch.tensor([0.1, 0.6, 0.3]).expand(n, 3)),
        "multi_categorical": Independent(Categorical(probs=torch.tensor([[0.2, 0.8], [0.5, 0.5]]).expand(n, 2, 2)), 1),
        "gaussian": Independent(Normal(torch.tensor([1.0, -2.0]).expand(n, 2), torch.tensor([0.5, 2.0]).expand(n, 2)), 1),
        "bernoulli": Independent(Bernoulli(probs=torch.tensor([0.25, 0.9]).expand(n, 2)), 1),
    }
    for name, dist in heads.items():
        first = sample(dist, torch.Generator().manual_seed(7))
        torch.manual_seed(1)  # the global generator moves; the draws do not
        torch.rand(5)
        assert torch.equal(sample(dist, torch.Generator().manual_seed(7)), first), name
        assert first.shape == dist.sample().shape, name
        if name == "categorical":
            frequencies = torch.bincount(first, minlength=3).float() / n
            torch.testing.assert_close(frequencies, torch.tensor([0.1, 0.6, 0.3]), atol=0.015, rtol=0)
        elif name == "multi_categorical":
            torch.testing.assert_close(first.float().mean(0), torch.tensor([0.8, 0.5]), atol=0.015, rtol=0)
        elif name == "gaussian":
            torch.testing.assert_close(first.mean(0), torch.tensor([1.0, -2.0]), atol=0.05, rtol=0)
            torch.testing.assert_close(first.std(0), torch.tensor([0.5, 2.0]), atol=0.05, rtol=0)
        else:
            torch.testing.assert_close(first.mean(0), torch.tensor([0.25, 0.9]), atol=0.015, rtol=0)
