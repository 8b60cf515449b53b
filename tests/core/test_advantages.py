"""GAE against a naive double loop, with terminations and truncations inside the batch."""

import torch

from rlrun.core.advantages import gae


def naive_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """A_t = sum_l (gamma lam)^l delta_{t+l}, summed until the episode ends, by brute force."""
    T, N = rewards.shape
    adv = torch.zeros(T, N, dtype=torch.float64)
    for n in range(N):
        for t in range(T):
            total, weight = 0.0, 1.0
            for k in range(t, T):
                boot = 0.0 if terminated[k, n] else gamma * next_values[k, n]
                total += weight * (rewards[k, n] + boot - values[k, n])
                if terminated[k, n] or truncated[k, n]:
                    break
                weight *= gamma * lam
            adv[t, n] = total
    return adv


def test_gae_matches_naive_loop_with_terminations_and_truncations():
    g = torch.Generator().manual_seed(0)
    T, N = 13, 4
    rewards = torch.randn(T, N, generator=g, dtype=torch.float64)
    values = torch.randn(T, N, generator=g, dtype=torch.float64)
    next_values = torch.randn(T, N, generator=g, dtype=torch.float64)
    terminated = torch.rand(T, N, generator=g) < 0.15
    truncated = (torch.rand(T, N, generator=g) < 0.15) & ~terminated
    assert terminated.any() and truncated.any()
    for gamma, lam in [(0.99, 0.95), (0.9, 1.0), (0.5, 0.0)]:
        expected = naive_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
        got = gae(rewards, values, next_values, terminated, terminated | truncated, gamma, lam)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_lambda_one_gives_monte_carlo_returns():
    rewards = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    values = torch.zeros(3, 1, dtype=torch.float64)
    terminated = torch.tensor([[False], [False], [True]])
    adv = gae(rewards, values, values, terminated, terminated, gamma=0.5, gae_lambda=1.0)
    torch.testing.assert_close(adv[:, 0], torch.tensor([1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0], dtype=torch.float64))


def test_truncation_bootstraps_but_termination_does_not():
    rewards = torch.ones(1, 2, dtype=torch.float64)
    values = torch.zeros(1, 2, dtype=torch.float64)
    next_values = torch.full((1, 2), 10.0, dtype=torch.float64)
    terminated = torch.tensor([[True, False]])
    done = torch.tensor([[True, True]])  # env 0 terminated, env 1 truncated
    adv = gae(rewards, values, next_values, terminated, done, gamma=0.9, gae_lambda=0.95)
    torch.testing.assert_close(adv[0], torch.tensor([1.0, 1.0 + 0.9 * 10.0], dtype=torch.float64))
