"""Policy heads and networks."""

import math

import torch
from torch.distributions import kl_divergence

from rlrun.networks import CategoricalActor, Critic, GaussianActor, mlp


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
