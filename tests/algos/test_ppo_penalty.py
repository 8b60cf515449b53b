"""PPO-Penalty's update on a fixed batch (Alg 5.23): lambda is adapted once, from the exact mean KL d
after the epochs, by the paper's rule, and the lambda of the epochs is the one held before."""

import pytest

from rlrun.algos.ppo_penalty import PPOPenalty, PPOPenaltyConfig
from tests.algos.common import batch_for, networks, update

LAMBDA, A, B = 0.7, 1.3, 3.0  # lambda_0, tolerance a, factor b: not the defaults, so each must be read
SMALL = {"policy_epochs": 3, "critic_epochs": 1}


def run(kl_target: float, **overrides) -> tuple[PPOPenalty, dict[str, float]]:
    actor, critic = networks(gaussian=True)
    cfg = PPOPenaltyConfig(**{"kl_target": kl_target, "kl_coef_init": LAMBDA, "kl_tolerance": A,
                              "kl_adapt_factor": B, **SMALL, **overrides})
    algo = PPOPenalty(cfg, actor, critic, seed=0)
    return algo, update(algo, batch_for(actor))


@pytest.fixture(scope="module")
def measured_kl() -> float:
    """d of the seeded update; kl_target plays no part before the adaptation, so every run has this d."""
    return run(kl_target=1.0)[1]["policy/kl"]


@pytest.mark.parametrize("factor, branch", [  # d_targ = factor * d
    pytest.param(1e-6, 1, id="tiny-target"), pytest.param(0.999 / A, 1, id="just-above-band"),
    pytest.param(1.001 / A, 0, id="band-top"), pytest.param(1.0, 0, id="target-equals-d"),
    pytest.param(0.999 * A, 0, id="band-bottom"),
    pytest.param(1.001 * A, -1, id="just-below-band"), pytest.param(1e6, -1, id="huge-target"),
])
def test_lambda_follows_the_adaptive_kl_rule(measured_kl, factor, branch):
    """Step 5: with d the exact mean KL after the epochs, lambda * b if d > d_targ * a, / b if d < d_targ / a."""
    target = measured_kl * factor
    algo, metrics = run(kl_target=target)
    d = metrics["policy/kl"]
    assert d == measured_kl > 0.0
    assert metrics["ppo_penalty/kl_coef_before"] == LAMBDA
    if branch == 1:
        assert d > target * A
        expected = LAMBDA * B
    elif branch == -1:
        assert d < target / A
        expected = LAMBDA / B
    else:
        assert target / A <= d <= target * A
        expected = LAMBDA
    assert metrics["ppo_penalty/adapt"] == branch
    assert metrics["ppo_penalty/kl_coef"] == pytest.approx(expected, rel=1e-12)
    assert algo.kl_controllers[0].kl_coef == metrics["ppo_penalty/kl_coef"]


def test_next_update_uses_the_adapted_lambda():
    """Step 5 -> step 3: the lambda adapted by one update is the lambda_old of the next."""
    algo, first = run(kl_target=1e-9)  # a tiny target: the first update multiplies lambda by b
    second = update(algo, batch_for(algo.actor))
    assert second["ppo_penalty/kl_coef_before"] == first["ppo_penalty/kl_coef"] == LAMBDA * B


def test_penalty_is_lambda_old_times_the_minibatch_kl():
    """Step 3: the KL term of J is weighted by the lambda held before the update, not by the config's lambda_0."""
    per_lambda = []
    for kl_coef in (0.5, 4.0):
        actor, critic = networks(gaussian=True)
        # one minibatch, two epochs: the first step starts at pi = pi_old (zero KL and KL gradient),
        # so both runs take the same step and the second epoch's KL term is the same
        algo = PPOPenalty(PPOPenaltyConfig(policy_epochs=2, batch_size=256, critic_epochs=1), actor, critic, seed=0)
        algo.kl_controllers[0].kl_coef = kl_coef
        metrics = update(algo, batch_for(actor))
        assert metrics["ppo_penalty/kl_coef_before"] == kl_coef
        per_lambda.append(metrics["loss/kl_penalty"] / kl_coef)
    assert per_lambda[0] > 0.0
    assert per_lambda[1] == pytest.approx(per_lambda[0], rel=1e-3)


def test_larger_lambda_holds_the_policy_closer_to_pi_old():
    """Step 3: lambda weights the KL term of the objective J, so a large lambda gives a much smaller d."""
    d = {}
    for kl_coef in (0.01, 100.0):
        algo, metrics = run(kl_target=1.0, kl_coef_init=kl_coef, policy_epochs=5)
        d[kl_coef] = metrics["policy/kl"]
    assert 0.0 < 10 * d[100.0] < d[0.01]
