"""ACKTR's update on a fixed batch: the trust region holds, the state resumes, degenerate batches step nowhere."""

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlrun.algos.acktr import ACKTR, ACKTRConfig
from rlrun.core.batch import Batch
from rlrun.core.losses import minibatches
from rlrun.core.natural_gradient import flat_grad, make_fisher_vector_product
from rlrun.errors import ConfigError
from rlrun.networks import make_networks
from tests.algos.common import batch_for, networks, update


def make(gaussian: bool, **overrides) -> tuple[ACKTR, Batch]:
    """ACKTR with eta_max 1 on large advantages: the unconstrained step would overshoot max_kl."""
    actor, critic = networks(gaussian)
    cfg = ACKTRConfig(**{"eta_max": 1.0, "max_kl": 0.01, "ent_coef": 0.0, **overrides})
    return ACKTR(cfg, actor, critic, seed=0), batch_for(actor)


@pytest.mark.parametrize("gaussian", [False, True])
def test_measured_kl_never_exceeds_max_kl(gaussian):
    algo, batch = make(gaussian)
    for _ in range(5):
        metrics = update(algo, batch)
        assert metrics["policy/kl"] <= metrics["acktr/max_kl"]
        # the exact quadratic is close: the check only ever trims the step
        assert metrics["acktr/step_accepted"] == 1.0 and metrics["policy/kl"] > 0.0


def test_zero_advantages_take_no_step():
    algo, batch = make(gaussian=True)
    batch.advantages.zero_()
    before = [p.detach().clone() for p in algo.params[0]]
    metrics = update(algo, batch)
    assert metrics["acktr/step_scale"] == 0.0 and metrics["policy/kl"] == 0.0
    for p, q in zip(algo.params[0], before):
        assert torch.equal(p, q)


def test_the_separate_mode_resumes_from_its_state():
    """K-FAC's running factors and the K-FAC critic's are in the state: a restored copy continues
    exactly as the original does."""
    algo, batch = make(gaussian=True, critic_epochs=3, stat_decay=0.99, inv_every=2)
    update(algo, batch)
    fresh, _ = make(gaussian=True, critic_epochs=3, stat_decay=0.99, inv_every=2)
    fresh.actor.load_state_dict(algo.actor.state_dict())
    fresh.critic.load_state_dict(algo.critic.state_dict())
    fresh.load_state_dict(copy.deepcopy(algo.state_dict()))
    torch.manual_seed(5)  # the Fisher's sampled actions and values
    continued = update(algo, batch)
    torch.manual_seed(5)
    assert update(fresh, batch) == continued


@pytest.mark.parametrize("batch_size", [None, 64])
def test_the_adam_critic_takes_whole_batch_or_minibatch_adam_steps_and_leaves_the_actor(batch_size):
    """critic_optimizer=adam: critic_epochs passes of Adam on mean (V - G)^2, in minibatches of
    critic_batch_size (shuffled by the algorithm's own generator) or as whole-batch steps; the
    reference is torch's per-tensor Adam on a copy of the critic, fed the same minibatches."""
    actor, critic = networks(gaussian=True)
    reference = copy.deepcopy(critic)
    cfg = ACKTRConfig(critic_optimizer="adam", critic_lr=1e-2, critic_epochs=3, critic_batch_size=batch_size)
    algo = ACKTR(cfg, actor, critic, seed=0)
    batch = batch_for(actor)
    actor_before = [p.detach().clone() for p in actor.parameters()]
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    steps = 0
    for _ in range(3):
        for idx in minibatches(len(batch.obs), batch_size or len(batch.obs), generator):
            optimizer.zero_grad()
            ((reference(batch.obs[idx]) - batch.returns[idx]).pow(2).mean()).backward()
            optimizer.step()
            steps += 1
    assert steps == (3 if batch_size is None else 12)
    algo.update(batch, 0.0)
    for got, expected in zip(critic.parameters(), reference.parameters()):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(actor.parameters(), actor_before))  # the actor's own step
    algo_fresh = ACKTR(cfg, *networks(gaussian=True), seed=0)
    algo_fresh.load_state_dict(algo.state_dict())  # Adam's moments and the shuffling generator resume
    assert torch.equal(algo_fresh.generators[0].get_state(), algo.generators[0].get_state())


def joint(**overrides) -> tuple[ACKTR, Batch]:
    """ACKTR with one small CNN (4 features; 1,352 parameters in all) shared by actor and critic
    (share_encoder) on 6x6 frames, eta_max 1."""
    torch.manual_seed(0)
    cfg = ACKTRConfig(**{"share_encoder": True, "hidden_sizes": [], "cnn_features": 4, "eta_max": 1.0, "max_kl": 0.01,
                         "ent_coef": 0.0, **overrides})
    actor, critic = make_networks(cfg, spaces.Box(0, 255, (6, 6, 2), np.uint8), spaces.Discrete(3))
    frames = torch.randint(0, 256, (96, 2, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    return ACKTR(cfg, actor, critic, seed=0), batch_for(actor, obs=frames)


def test_a_shared_encoder_gets_one_kfac_over_actor_and_critic_holding_each_layer_once():
    algo, _ = joint()
    assert algo.actor.net.encoder is algo.critic.net.encoder
    modules = [layer.module for layer in algo.actor_kfacs[0].layers]
    assert len(modules) == len(set(modules)) == 2 + 2  # conv and fc of the CNN, the two linear heads
    assert algo.critic_kfacs is None and algo.critic_optimizer is None


def test_the_joint_step_keeps_the_joint_kl_within_max_kl_and_trains_the_critic():
    """The measured KL of pi(a|s) N(y; V(s), 1), KL_pi + E[(V - V_old)^2] / 2, stays within max_kl;
    the value loss falls over the steps, through the same step that moves the policy."""
    algo, batch = joint()
    batch.returns = torch.full_like(batch.returns, 2.0)  # a value to learn
    losses = []
    for _ in range(8):
        with torch.no_grad():
            pi_old, values_old = algo.actor(batch.obs), algo.critic(batch.obs)
        metrics = update(algo, batch)
        with torch.no_grad():
            value_kl = 0.5 * (algo.critic(batch.obs) - values_old).pow(2).mean().item()
            joint_kl = torch.distributions.kl_divergence(pi_old, algo.actor(batch.obs)).mean().item() + value_kl
        assert joint_kl == pytest.approx(metrics["acktr/joint_kl"], rel=1e-5)
        assert metrics["acktr/step_accepted"] == 1.0 and 0.0 < joint_kl <= metrics["acktr/max_kl"]
        assert 0.0 < metrics["policy/kl"] < joint_kl and value_kl > 0.0
        losses.append(metrics["loss/value"])
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])) and losses[-1] < 0.8 * losses[0]


def test_the_joint_trust_region_uses_the_exact_joint_fisher():
    """Delta^T F Delta from the Hessian of the joint KL (one Fisher-vector product) equals the dense
    joint Fisher E[s s^T] of pi and the Gauss-Newton E[J^T J] of the critic, on every parameter."""
    algo, batch = joint()
    obs, params = batch.obs[:12], algo.params[0]
    with torch.no_grad():
        pi_old, values_old = algo.actor(obs), algo.critic(obs)
    probs = pi_old.probs
    dense = 0.0
    for i in range(len(obs)):  # E over a ~ pi of score score^T, plus J^T J of V, per state
        for a in range(3):
            score = flat_grad(algo.actor(obs[i:i + 1]).log_prob(torch.tensor([a])).sum(), params)
            dense = dense + probs[i, a] * torch.outer(score, score)
        jacobian = flat_grad(algo.critic(obs[i:i + 1]).sum(), params)
        dense = dense + torch.outer(jacobian, jacobian)
    dense = dense / len(obs)
    kl = (torch.distributions.kl_divergence(pi_old, algo.actor(obs)).mean()
          + 0.5 * (algo.critic(obs) - values_old).pow(2).mean())
    fvp = make_fisher_vector_product(kl, params, damping=0.0)
    v = torch.randn(dense.shape[0], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(fvp(v), dense @ v, rtol=1e-4, atol=1e-6)


def test_the_joint_mode_refuses_knobs_of_the_separate_critic_and_resumes_from_its_state():
    with pytest.raises(ConfigError, match=r"algo.critic_optimizer='adam' is not allowed with algo.share_encoder=true"):
        joint(critic_optimizer="adam")
    with pytest.raises(ConfigError, match=r"algo.critic_epochs=3"):
        joint(critic_epochs=3)
    algo, batch = joint()
    update(algo, batch)
    fresh, _ = joint()
    fresh.actor.load_state_dict(algo.actor.state_dict())  # the shared CNN's weights are in both
    fresh.critic.load_state_dict(algo.critic.state_dict())
    fresh.load_state_dict(algo.state_dict())
    torch.manual_seed(5)  # the Fisher's sampled actions and values
    continued = update(algo, batch)
    torch.manual_seed(5)
    resumed = update(fresh, batch)
    assert resumed == continued


def test_trust_region_kl_policy_bounds_the_policy_kl_alone_and_logs_the_value_drift():
    algo, batch = joint(trust_region_kl="policy")
    for _ in range(3):
        metrics = update(algo, batch)
        assert metrics["acktr/step_accepted"] == 1.0
        assert 0.0 < metrics["policy/kl"] <= metrics["acktr/max_kl"]
        assert metrics["acktr/joint_kl"] == pytest.approx(metrics["policy/kl"] + metrics["acktr/value_kl"], rel=1e-5)
    first_policy, batch = joint(trust_region_kl="policy")
    first_joint, _ = joint()
    torch.manual_seed(7)
    policy_bound = update(first_policy, batch)
    torch.manual_seed(7)
    joint_bound = update(first_joint, batch)  # the same direction, the value's drift counted too
    assert joint_bound["policy/kl"] < policy_bound["policy/kl"] <= policy_bound["acktr/max_kl"]
    assert policy_bound["acktr/joint_kl"] > joint_bound["acktr/joint_kl"]


def test_the_gaussian_fisher_factor_comes_from_sampled_actions_held_fixed():
    """The actor's Fisher is E[grad log pi(a'|s) grad^T] at actions a' drawn from pi and then held
    fixed: for the mean layer the output-gradient factor is the mean of g g^T with g = (a' - mu) /
    sigma^2. A sample a' = mu + sigma * eps that carries mu's gradient makes g zero (d/dmu of
    log N(mu + sigma eps; mu, sigma) is 0), and K-FAC degenerates to damped gradient descent."""
    algo, batch = make(gaussian=True)
    with torch.no_grad():
        pi = algo.actor(batch.obs)
        mu, sigma = pi.mean, pi.stddev
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0), dtype=mu.dtype)  # the Fisher's first draw
    update(algo, batch)
    g = eps / sigma  # (a' - mu) / sigma^2 with a' = mu + sigma eps
    expected = (g.T @ g / len(g)).to(torch.float64)
    torch.testing.assert_close(algo.actor_kfacs[0].layers[-1].S, expected, rtol=1e-5, atol=1e-8)


def test_linear_schedule_bounds_the_step_by_the_shrunk_max_kl():
    """max_kl_schedule=linear: at progress 0.75 the step's measured KL stays within max_kl / 4."""
    algo, batch = make(gaussian=True, max_kl_schedule="linear")
    metrics = update(algo, batch, progress=0.75)
    assert metrics["acktr/max_kl"] == pytest.approx(0.0025)
    assert metrics["acktr/step_accepted"] == 1.0 and 0.0 < metrics["policy/kl"] <= 0.0025
