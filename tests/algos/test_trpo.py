"""TRPO's update on a fixed batch (Alg 5.22): an accepted step keeps the mean KL within max_kl and
improves the surrogate, a rejected one leaves the actor exactly at theta_old, and the critic's fit
and the actor's step move only their own network."""

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from rlrun.algos.trpo import TRPO, TRPOConfig
from rlrun.core.batch import Batch
from rlrun.core.losses import normalize, ratio_surrogate
from tests.algos.common import batch_for, networks, update

# With cg_damping 1e-4 the quadratic KL model undershoots: the full step lands at about 2.5x
# (Categorical) and 6.7x (Gaussian) max_kl, so the line search's KL check has to act.
OVERSHOOT = {"max_kl": 0.3, "cg_damping": 1e-4}


def make(gaussian: bool, **overrides) -> tuple[TRPO, Batch]:
    actor, critic = networks(gaussian)
    return TRPO(TRPOConfig(**overrides), actor, critic, seed=0), batch_for(actor)


def surrogate(algo: TRPO, batch: Batch) -> float:
    """mean(exp(logp - logp_old) * A) at the actor's current parameters, A as TRPO normalises it."""
    assert algo.cfg.normalize_advantage
    with torch.no_grad():
        log_prob = algo.actor(batch.obs).log_prob(batch.actions)
        return ratio_surrogate(log_prob, batch.log_probs, normalize(batch.advantages)).item()


def snapshot(module: torch.nn.Module) -> torch.Tensor:
    return parameters_to_vector(module.parameters()).detach().clone()


@pytest.mark.parametrize("overrides", [{}, OVERSHOOT], ids=["defaults", "overshooting"])
@pytest.mark.parametrize("gaussian", [False, True])
def test_accepted_step_stays_within_max_kl_and_improves_the_surrogate(gaussian, overrides):
    """Step 5: the accepted theta has exact mean KL(pi_old || pi_new) <= max_kl and a larger surrogate."""
    algo, batch = make(gaussian, **overrides)
    before = surrogate(algo, batch)
    metrics = update(algo, batch)
    assert metrics["trpo/step_accepted"] == 1.0
    assert 0.0 < metrics["policy/kl"] <= algo.cfg.max_kl
    after = surrogate(algo, batch)
    assert after > before
    assert metrics["trpo/surrogate_improvement"] == pytest.approx(after - before, rel=1e-4)
    if overrides:  # the full step broke the bound: the search shrank it
        assert metrics["trpo/backtracks"] >= 1


@pytest.mark.parametrize("gaussian", [False, True])
def test_linear_schedule_shrinks_the_bound_the_step_fills(gaussian):
    """max_kl_schedule=linear: at progress 0.75 delta is max_kl / 4; the step fills that bound as
    the constant schedule's step fills max_kl (the quadratic model's scale goes as sqrt(delta))."""
    steps = {}
    for schedule in ("constant", "linear"):
        algo, batch = make(gaussian, max_kl_schedule=schedule)
        steps[schedule] = update(algo, batch, progress=0.75)
    linear, constant = steps["linear"], steps["constant"]
    assert linear["trpo/max_kl"] == pytest.approx(0.0025) and constant["trpo/max_kl"] == 0.01
    assert 0.0 < linear["policy/kl"] <= 0.0025 < constant["policy/kl"] <= 0.01
    assert linear["trpo/backtracks"] == constant["trpo/backtracks"] == 0.0  # both full steps: the scales compare
    assert linear["trpo/step_norm"] == pytest.approx(constant["trpo/step_norm"] / 2, rel=1e-5)


@pytest.mark.parametrize("gaussian", [False, True])
def test_rejected_step_restores_theta_old_bitwise(gaussian):
    """Step 5: when no candidate passes, the actor's parameters are exactly theta_old."""
    algo, batch = make(gaussian, backtrack_iters=0, **OVERSHOOT)  # one candidate, the overshooting full step
    before = snapshot(algo.actor)
    seen = []
    algo.actor.register_forward_hook(lambda module, args, out: seen.append(snapshot(module)))
    metrics = update(algo, batch)
    assert metrics["trpo/step_accepted"] == 0.0 and metrics["trpo/backtracks"] == 1.0
    assert any(not torch.equal(params, before) for params in seen)  # the candidate really moved the actor
    assert torch.equal(snapshot(algo.actor), before)
    assert metrics["policy/kl"] == 0.0


def test_zero_advantages_take_no_step():
    """Steps 3-5: a zero gradient gives x^T H x = 0, no step, and the actor stays at theta_old."""
    algo, batch = make(gaussian=True)
    batch.advantages.zero_()
    before = snapshot(algo.actor)
    metrics = update(algo, batch)
    assert metrics["trpo/xHx_invalid"] == 1.0 and metrics["trpo/step_accepted"] == 0.0
    assert torch.equal(snapshot(algo.actor), before)


def test_critic_fitting_does_not_move_the_actor():
    """Step 6: fitting V touches only the critic; the actor ends where the line search left it."""
    runs = []
    for critic_cfg in ({"critic_lr": 1e-3, "critic_epochs": 1}, {"critic_lr": 1e-1, "critic_epochs": 3}):
        algo, batch = make(gaussian=True, **critic_cfg)
        assert update(algo, batch)["trpo/step_accepted"] == 1.0
        runs.append((snapshot(algo.actor), snapshot(algo.critic)))
    (actor_a, critic_a), (actor_b, critic_b) = runs
    assert not torch.equal(critic_a, critic_b)
    assert torch.equal(actor_a, actor_b)


def test_actor_step_does_not_move_the_critic():
    """Steps 3-5 touch only the actor: the critic ends the same whether or not the actor stepped."""
    runs = []
    for zero_advantages in (False, True):
        algo, batch = make(gaussian=True, critic_epochs=2)
        initial_critic = snapshot(algo.critic)
        if zero_advantages:
            batch.advantages.zero_()  # the returns (critic targets) are a separate tensor, unchanged
        metrics = update(algo, batch)
        runs.append((metrics["trpo/step_accepted"], snapshot(algo.critic)))
    (stepped, critic_a), (stepped_b, critic_b) = runs
    assert stepped == 1.0 and stepped_b == 0.0
    assert not torch.equal(critic_a, initial_critic)
    assert torch.equal(critic_a, critic_b)
