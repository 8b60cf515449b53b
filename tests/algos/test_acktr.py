"""ACKTR's update on a fixed batch: the trust region holds, eta_max adapts, degenerate batches step nowhere."""

import copy
import math

import pytest
import torch

from rlrun.algos.acktr import ACKTR, ACKTRConfig
from rlrun.core.batch import Batch
from rlrun.core.losses import minibatches
from tests.algos.common import batch_for, networks, update


def make(gaussian: bool, **overrides) -> tuple[ACKTR, Batch]:
    """ACKTR with eta_max 1 on large advantages: the unconstrained step would overshoot max_kl."""
    actor, critic = networks(gaussian)
    cfg = ACKTRConfig(**{"eta_max": 1.0, "max_kl": 0.01, "ent_coef": 0.0, **overrides})
    return ACKTR(cfg, actor, critic, seed=0), batch_for(actor)


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("fisher", ["exact", "kfac"])
def test_measured_kl_never_exceeds_max_kl(gaussian, fisher):
    algo, batch = make(gaussian, trust_region_fisher=fisher)
    for _ in range(5):
        metrics = update(algo, batch)
        assert metrics["policy/kl"] <= metrics["acktr/max_kl"]
        if fisher == "exact":  # the exact quadratic is close: the check only ever trims the step
            assert metrics["acktr/step_accepted"] == 1.0 and metrics["policy/kl"] > 0.0
        elif not metrics["acktr/step_accepted"]:  # K-FAC's estimate can overshoot past 0.9^10: rejected
            assert metrics["policy/kl"] == 0.0 and metrics["acktr/backtracks"] == algo.cfg.backtrack_iters + 1


def test_kfac_estimate_overshoots_and_the_check_shrinks_the_step():
    """K-FAC's own quadratic underestimates the curvature: the check has to backtrack."""
    algo, batch = make(gaussian=False, trust_region_fisher="kfac")
    backtracks = [update(algo, batch)["acktr/backtracks"] for _ in range(5)]
    assert max(backtracks) >= 1


def test_eta_max_shrinks_when_kl_is_above_twice_the_target_and_grows_below_half():
    algo, batch = make(gaussian=True, kl_target=0.002, max_kl=0.01)
    first = update(algo, batch)  # eta_max 1 reaches the bound: KL ~0.01 > 2 x 0.002
    assert first["policy/kl"] > 0.004 and first["acktr/eta_adapt"] == -1.0
    assert first["acktr/eta_max"] == 1.0 and 1.0 / algo.eta_max_controller.kl_coef == pytest.approx(1.0 / 1.5)
    small, batch = make(gaussian=True, kl_target=0.5, max_kl=1.0, eta_max=1e-4)
    metrics = update(small, batch)  # a tiny step: KL far below half the target
    assert metrics["acktr/eta_adapt"] == 1.0 and 1.0 / small.eta_max_controller.kl_coef == pytest.approx(1.5e-4)


@pytest.mark.parametrize("share", [0.25, 0.5])
def test_log_std_takes_its_own_share_of_the_trust_region(share):
    """log_std_kl_share: the log-std's step is scaled into its own share of max_kl (its exact Fisher
    block 2 I makes the second-order KL of a log-std change sum(d^2)), the mean network's into the
    rest, and the measured total stays within max_kl."""
    algo, batch = make(gaussian=True, log_std_kl_share=share, max_kl=0.01)
    log_std = algo.log_std.detach().clone()
    metrics = update(algo, batch)
    change = algo.log_std.detach() - log_std
    assert metrics["policy/kl"] <= 0.01 and metrics["acktr/step_accepted"] == 1.0
    shrink = algo.cfg.backtrack_coef ** metrics["acktr/backtracks"]
    assert change.pow(2).sum().item() == pytest.approx(0.01 * share * shrink ** 2, rel=1e-4)
    assert metrics["acktr/log_std_step_scale"] != pytest.approx(metrics["acktr/step_scale"])


def test_zero_advantages_take_no_step():
    algo, batch = make(gaussian=True)
    batch.advantages.zero_()
    before = [p.detach().clone() for p in algo.params]
    metrics = update(algo, batch)
    assert metrics["acktr/step_scale"] == 0.0 and metrics["policy/kl"] == 0.0
    for p, q in zip(algo.params, before):
        assert torch.equal(p, q)


def test_momentum_and_eta_max_are_checkpointed():
    algo, batch = make(gaussian=True, momentum=0.9, kl_target=0.002, critic_epochs=3)
    update(algo, batch)
    state = algo.state_dict()
    restored, _ = make(gaussian=True, momentum=0.9, kl_target=0.002, critic_epochs=3)
    restored.load_state_dict(state)
    assert restored.eta_max_controller.kl_coef == algo.eta_max_controller.kl_coef
    assert all(torch.equal(a, b) for a, b in zip(restored.velocity, algo.velocity))
    assert all(math.isfinite(v) for v in update(algo, batch).values())


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
    assert torch.equal(algo_fresh.generator.get_state(), algo.generator.get_state())
