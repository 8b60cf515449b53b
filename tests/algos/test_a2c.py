"""A2C's update on a fixed batch: exactly one RMSprop step on the actor-critic loss, clipped."""

import copy

import pytest
import torch

from rlrun.algos.a2c import A2C, A2CConfig
from tests.algos.common import batch_for, networks, update


def reference_step(actor, critic, batch, cfg: A2CConfig) -> None:
    """The same step written out with the modules' distributions and per-tensor torch tools."""
    params = [*actor.parameters(), *critic.parameters()]
    optimizer = torch.optim.RMSprop(params, lr=cfg.learning_rate, alpha=cfg.rms_alpha, eps=cfg.rms_eps)
    pi = actor(batch.obs)
    policy_loss = -(pi.log_prob(batch.actions) * batch.advantages).mean()
    value_loss = (critic(batch.obs) - batch.returns).pow(2).mean()
    loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * pi.entropy().mean()
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    optimizer.step()


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("max_grad_norm", [0.5, 1e6])  # clipping binding (the advantages are large), and not
def test_one_update_is_one_clipped_rmsprop_step_on_the_actor_critic_loss(gaussian, max_grad_norm):
    actor, critic = networks(gaussian)
    ref_actor, ref_critic = copy.deepcopy(actor), copy.deepcopy(critic)
    cfg = A2CConfig(ent_coef=0.01, max_grad_norm=max_grad_norm)
    algo = A2C(cfg, actor, critic, seed=0)
    batch = batch_for(actor)
    metrics = update(algo, batch)
    reference_step(ref_actor, ref_critic, batch, cfg)
    assert (metrics["a2c/grad_norm"] > max_grad_norm) == (max_grad_norm == 0.5)
    for mine, ref in zip([*actor.parameters(), *critic.parameters()], [*ref_actor.parameters(), *ref_critic.parameters()]):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-6)
    assert metrics["policy/kl"] > 0.0


def test_the_optimiser_state_is_checkpointed():
    actor, critic = networks(gaussian=True)
    algo = A2C(A2CConfig(), actor, critic, seed=0)
    batch = batch_for(actor)
    update(algo, batch)
    state = copy.deepcopy(algo.state_dict())
    actor2, critic2 = networks(gaussian=True)
    restored = A2C(A2CConfig(), actor2, critic2, seed=0)
    restored.load_state_dict(state)
    actor2.load_state_dict(actor.state_dict())
    critic2.load_state_dict(critic.state_dict())
    update(algo, batch)
    update(restored, batch)
    for a, b in zip(algo.params.params, restored.params.params):
        assert torch.equal(a, b)


def test_a_cartpole_and_a_pendulum_run_log_its_chart_tags(run_rlrun):
    from rlrun.algos.registry import algorithms
    from tests.conftest import read_scalars

    for env in ("CartPole-v1", "Pendulum-v1"):
        res = run_rlrun("algo=a2c", f"env={env}", "total_steps=640", "progress=off", f"hydra.run.dir={env}")
        assert res.returncode == 0, res.stderr
        tags = set(read_scalars(run_rlrun.cwd / env))
        charted = {tag for chart in algorithms()["a2c"].charts.values() for tag in chart}
        assert charted | {"a2c/kl", "policy/entropy", "loss/policy", "loss/value", "train/learning_rate"} <= tags
