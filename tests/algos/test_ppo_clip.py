"""PPO-Clip's clipped surrogate and one update on a fixed batch (Alg 5.24): samples whose ratio is
clipped on the side where the clip binds give no gradient, the others give A * ratio / n, and the
clip fraction counts the samples outside [1 - eps, 1 + eps]."""

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.nn.utils import parameters_to_vector

from rlrun.algos.ppo_clip import PPOClip, PPOClipConfig
from rlrun.core.batch import Batch
from rlrun.core.losses import clipped_surrogate, normalize
from rlrun.networks import make_networks
from tests.algos.common import batch_for, networks, update

N, EPS, SHIFT, PER_GROUP = 64, 0.2, 0.5, 8  # ratio exp(+-0.5): 1.65 or 0.61, outside [0.8, 1.2]


def test_clipped_surrogate_gradient_vanishes_only_where_the_clip_binds():
    """Eq. 5.39-5.41: d L^CLIP / d log pi is 0 for r > 1+eps with A > 0 or r < 1-eps with A < 0, else A r / n."""
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5, 1.1, 0.9, 1.0])
    advantages = torch.tensor([2.0, -1.0, -3.0, 0.5, 1.5, -2.0, 1.0])
    binds = torch.tensor([True, True, False, False, False, False, False])
    old_log_prob = torch.linspace(-2.0, -0.5, 7)
    log_prob = (old_log_prob + ratio.log()).requires_grad_()
    clipped_surrogate(log_prob, old_log_prob, advantages, EPS).backward()
    expected = torch.where(binds, torch.zeros(7), advantages * ratio / 7)
    torch.testing.assert_close(log_prob.grad, expected)
    assert (log_prob.grad[~binds] != 0).all()


def make(gaussian: bool, push_binding: float = 0.0, push_loose: float = 0.0) -> tuple[PPOClip, Batch, dict]:
    """One epoch, one minibatch. The stored log pi_old of 4 groups of samples is shifted so that their
    ratio starts outside the clip range: 'binding' on the side where the clip binds (r > 1+eps with
    A > 0, r < 1-eps with A < 0), 'loose' on the other (r > 1+eps with A < 0, r < 1-eps with A > 0).
    ``push_*`` moves a group further out by that much more log-ratio."""
    actor, critic = networks(gaussian)
    algo = PPOClip(PPOClipConfig(n_epochs=1, batch_size=N, clip_eps=EPS), actor, critic, seed=0)
    batch = batch_for(actor, n=N)
    positive = (normalize(batch.advantages) > 0).nonzero().squeeze(-1)  # the signs the update sees
    negative = (normalize(batch.advantages) < 0).nonzero().squeeze(-1)
    up = torch.cat([positive[:PER_GROUP], negative[PER_GROUP:2 * PER_GROUP]])  # ratio > 1 + eps
    down = torch.cat([negative[:PER_GROUP], positive[PER_GROUP:2 * PER_GROUP]])  # ratio < 1 - eps
    groups = {"binding": torch.cat([up[:PER_GROUP], down[:PER_GROUP]]),
              "loose": torch.cat([up[PER_GROUP:], down[PER_GROUP:]])}
    batch.log_probs[up[:PER_GROUP]] -= SHIFT + push_binding
    batch.log_probs[down[:PER_GROUP]] += SHIFT + push_binding
    batch.log_probs[up[PER_GROUP:]] -= SHIFT + push_loose
    batch.log_probs[down[PER_GROUP:]] += SHIFT + push_loose
    return algo, batch, groups


def after_update(algo: PPOClip, batch: Batch) -> torch.Tensor:
    update(algo, batch)
    return parameters_to_vector([*algo.actor.parameters(), *algo.critic.parameters()]).detach().clone()


@pytest.mark.parametrize("gaussian", [False, True])
def test_clip_fraction_reports_the_samples_outside_the_clip_range(gaussian):
    """Alg 5.24 diagnostics: ppo_clip/clip_fraction is the fraction of samples with |r - 1| > eps."""
    algo, batch, groups = make(gaussian)
    with torch.no_grad():
        log_prob, _ = algo.actor.log_prob_entropy(batch.obs, batch.actions)
    outside = ((log_prob - batch.log_probs).exp() - 1.0).abs() > EPS
    assert outside.sum() == 4 * PER_GROUP
    assert outside[groups["binding"]].all() and outside[groups["loose"]].all()
    assert update(algo, batch)["ppo_clip/clip_fraction"] == pytest.approx(4 * PER_GROUP / N)


@pytest.mark.parametrize("gaussian", [False, True])
def test_binding_samples_give_the_actor_no_gradient(gaussian):
    """Eq. 5.41 on the actor: the clipped loss of the binding samples has zero gradient, the loose ones' does not."""
    algo, batch, groups = make(gaussian)
    params = list(algo.actor.parameters())
    log_prob, _ = algo.actor.log_prob_entropy(batch.obs, batch.actions)
    advantages = normalize(batch.advantages)

    def grad(idx: torch.Tensor) -> torch.Tensor:
        loss = -clipped_surrogate(log_prob[idx], batch.log_probs[idx], advantages[idx], EPS)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])

    assert (grad(groups["binding"]) == 0).all()
    assert grad(groups["loose"]).abs().max() > 0


@pytest.mark.parametrize("gaussian", [False, True])
def test_update_ignores_how_far_out_the_binding_samples_are(gaussian):
    """Alg 5.24 step: moving binding samples' ratios further out changes nothing; moving the loose ones does."""
    algo, batch, _ = make(gaussian)
    reference = after_update(algo, batch)
    algo, batch, _ = make(gaussian, push_binding=0.3)
    assert torch.equal(after_update(algo, batch), reference)
    algo, batch, _ = make(gaussian, push_loose=0.3)
    assert not torch.equal(after_update(algo, batch), reference)


@pytest.mark.parametrize("share", [True, False])
def test_a_shared_encoder_is_one_cnn_stepped_once_by_the_joint_loss(share):
    """algo.share_encoder: the actor and the critic hold the same CNN, one slice of the flat vector,
    and one update is torch's Adam over the distinct parameters on the joint loss (clipped as one)."""
    torch.manual_seed(0)
    cfg = PPOClipConfig(hidden_sizes=[16], cnn_features=8, n_epochs=1, batch_size=64, ent_coef=0.01, vf_coef=1.0,
                        share_encoder=share)
    actor, critic = make_networks(cfg, spaces.Box(0, 255, (2, 12, 12), np.uint8), spaces.Discrete(3))
    assert (actor.net.encoder is critic.net.encoder) == share
    obs = torch.randint(0, 256, (64, 2, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    batch = batch_for(actor, obs=obs)
    ref_actor, ref_critic = copy.deepcopy((actor, critic))  # one deepcopy: the copies share as the originals do
    algo = PPOClip(cfg, actor, critic, seed=0)
    distinct = {id(p): p for p in [*actor.parameters(), *critic.parameters()]}
    assert algo.params.vector.numel() == sum(p.numel() for p in distinct.values())
    algo.update(batch, progress=0.0)

    params = list({id(p): p for p in [*ref_actor.parameters(), *ref_critic.parameters()]}.values())
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, eps=cfg.adam_eps)
    log_prob, entropy = ref_actor.log_prob_entropy(obs, batch.actions)
    advantages = normalize(batch.advantages) if cfg.normalize_advantage else batch.advantages
    loss = (-clipped_surrogate(log_prob, batch.log_probs, advantages, cfg.clip_eps)
            + cfg.vf_coef * ((ref_critic.value(obs) - batch.returns) ** 2).mean()
            - cfg.ent_coef * entropy.mean())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    optimizer.step()
    for ours, theirs in [(actor, ref_actor), (critic, ref_critic)]:
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            assert torch.allclose(p, q, atol=1e-6), name
