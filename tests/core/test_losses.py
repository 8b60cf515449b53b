"""Loss terms against naive element-wise references."""

import torch
from torch.distributions import Categorical, kl_divergence

from rlrun.core.losses import (approx_kl, clipped_surrogate, explained_variance, minibatches, ratio_surrogate,
                               scheduled, value_loss)


def test_clipped_surrogate_matches_an_elementwise_loop():
    g = torch.Generator().manual_seed(0)
    log_prob, old, adv = (torch.randn(50, generator=g, dtype=torch.float64) * s for s in (0.3, 0.3, 1.0))
    eps = 0.2
    expected = []
    for lp, o, a in zip(log_prob.tolist(), old.tolist(), adv.tolist()):
        r = torch.exp(torch.tensor(lp - o, dtype=torch.float64)).item()
        expected.append(min(r * a, max(min(r, 1 + eps), 1 - eps) * a))
    torch.testing.assert_close(clipped_surrogate(log_prob, old, adv, eps), torch.tensor(expected, dtype=torch.float64).mean())
    torch.testing.assert_close(ratio_surrogate(log_prob, old, adv), (torch.exp(log_prob - old) * adv).mean())


def test_approx_kl_estimates_the_exact_kl_under_old_samples():
    torch.manual_seed(0)
    old, new = Categorical(logits=torch.tensor([0.2, -0.5, 1.0])), Categorical(logits=torch.tensor([0.4, -0.2, 0.7]))
    a = old.sample((400_000,))
    est = approx_kl(new.log_prob(a), old.log_prob(a))
    torch.testing.assert_close(est, kl_divergence(old, new), rtol=0.05, atol=1e-4)


def test_value_loss_plain_and_clipped():
    values, returns, old = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0]), torch.tensor([1.5, 2.9])
    torch.testing.assert_close(value_loss(values, returns), torch.tensor((1.0 + 9.0) / 2))
    # clipped: v_clip = old + clamp(v - old, -0.1, 0.1) = [1.4, 3.0]; max of squared errors per element
    torch.testing.assert_close(value_loss(values, returns, old, 0.1), torch.tensor((max(1.0, 0.36) + max(9.0, 9.0)) / 2))


def test_explained_variance_and_schedule_and_minibatches():
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(returns, returns) == 1.0
    assert abs(explained_variance(torch.full((4,), 2.5), returns)) < 1e-6
    assert scheduled(1e-3, "linear", 0.25) == 1e-3 * 0.75 and scheduled(1e-3, "constant", 0.9) == 1e-3
    assert scheduled(0.2, "linear", 1.5) == 0.0
    parts = list(minibatches(10, 4, torch.Generator().manual_seed(0)))
    assert [len(p) for p in parts] == [4, 4, 2] and sorted(torch.cat(parts).tolist()) == list(range(10))
    assert list(minibatches(10, 10, torch.Generator())) == [slice(None)]  # whole batch: no shuffle, no copy
    assert list(minibatches(10, 64, torch.Generator())) == [slice(None)]
