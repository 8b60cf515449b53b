"""Several seeds of one configuration stepped together (``<Algorithm>.for_seeds``, a batched sweep's
group) against each seed run alone: after a few updates on the same batches, every seed has the
parameters, the optimiser state and the metrics of its own run. Through the written-out gradients
the seeds' matrix products are batched ones, whose sums round differently from the plain products
of a run alone: the parameters then agree to float32 rounding (1.8e-7 at most after 3 updates of 4
epochs of 4 minibatches; 1e-6 asked), and bit for bit where each seed runs its own autograd pass."""

import pytest
import torch
from gymnasium import spaces
from torch.nn.utils import parameters_to_vector

from rlrun.algos.ppo_clip import PPOClip, PPOClipConfig
from rlrun.core.batch import Batch
from rlrun.networks import make_networks
from tests.algos.common import batch_for, networks

SEEDS = (0, 1, 2)


def stack(batches: list[Batch]) -> Batch:
    return Batch(**{key: torch.stack([getattr(b, key) for b in batches])
                    for key in ("obs", "actions", "log_probs", "values", "advantages", "returns")})


def vector(*modules) -> torch.Tensor:
    return parameters_to_vector([p for m in modules for p in m.parameters()]).detach().clone()


def same_state(mine, reference, tolerance: dict) -> None:
    """Equal nested state dicts: tensors to ``tolerance`` (a generator's state exactly), the rest equal."""
    if isinstance(reference, dict):
        assert mine.keys() == reference.keys()
        for key in reference:
            same_state(mine[key], reference[key], tolerance)
    elif isinstance(reference, (list, tuple)):
        assert len(mine) == len(reference)
        for a, b in zip(mine, reference):
            same_state(a, b, tolerance)
    elif isinstance(reference, torch.Tensor) and reference.dtype == torch.uint8:
        assert torch.equal(mine, reference)
    elif isinstance(reference, torch.Tensor):
        torch.testing.assert_close(mine, reference, **tolerance)
    else:
        assert mine == reference


def fixed_batches(gaussian: bool, n: int):
    """batch_of(seed, k, actor): the k-th batch of a seed, the same for its run alone and stacked
    (sampled once, from the seed's first networks)."""
    batches = {}

    def batch_of(seed, k, actor):
        if (seed, k) not in batches:
            batches[seed, k] = batch_for(networks(gaussian, seed)[0], n=n, seed=100 * seed + k)
        return batches[seed, k]

    return batch_of


def float64_batches(gaussian: bool, n: int):
    """:func:`fixed_batches` in float64 (the actions of a categorical head stay integers)."""
    batch_of = fixed_batches(gaussian, n)

    def float64_batch_of(seed, k, actor):
        batch = batch_of(seed, k, actor)
        return Batch(**{key: value.double() if value.is_floating_point() else value
                        for key, value in ((key, getattr(batch, key)) for key in Batch.TENSORS)})

    return float64_batch_of


def float64_networks(gaussian: bool):
    """A seed's networks (tests.algos.common.networks) in float64."""
    return lambda seed: tuple(module.double() for module in networks(gaussian, seed))


def check(make_alone, make_stacked, make_networks_of, batches_of, updates: int = 3, **tolerance):
    """Each seed alone and all seeds stacked, ``updates`` updates each on the same batches."""
    alone = []
    for seed in SEEDS:
        actor, critic = make_networks_of(seed)
        algo, metrics = make_alone(actor, critic, seed), []
        for k in range(updates):
            metrics.append(algo.update(batches_of(seed, k, actor), progress=k / 10))
        alone.append((vector(actor, critic), algo.state_dict(), metrics))
    nets = [make_networks_of(seed) for seed in SEEDS]
    algo = make_stacked([a for a, _ in nets], [c for _, c in nets], list(SEEDS))
    metrics = []
    for k in range(updates):
        metrics.append(algo.update(stack([batches_of(seed, k, actor) for seed, (actor, _) in zip(SEEDS, nets)]),
                                   progress=k / 10))
    for s, (params, state, seed_metrics) in enumerate(alone):
        torch.testing.assert_close(vector(*nets[s]), params, **tolerance)
        same_state(algo.state_dict(s), state, tolerance)  # as the seed's own run would save it
        for k in range(updates):
            for key, value in seed_metrics[k].items():
                ours = metrics[k][key]
                ours = ours[s] if isinstance(ours, list) else ours
                assert ours == pytest.approx(value, rel=1e-4, abs=1e-6), (key, k, s)
    return alone


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("target_kl", [None, 0.01])
def test_ppo_clip_seeds_stacked_equal_each_seed_alone(gaussian, target_kl):
    cfg = PPOClipConfig(n_epochs=4, batch_size=64, target_kl=target_kl, ent_coef=0.01, clip_value_eps=0.2,
                        learning_rate=1e-2)
    batch_of = fixed_batches(gaussian, n=256)

    alone = check(lambda a, c, s: PPOClip(cfg, a, c, s), lambda a, c, s: PPOClip.for_seeds(cfg, a, c, s),
                  lambda seed: networks(gaussian, seed), batch_of, rtol=1e-5, atol=1e-6)  # batched vs plain matmuls
    epochs = [[m["train/epochs"] for m in metrics] for _, _, metrics in alone]
    if target_kl is not None:  # the seeds stopped early, and not all after the same number of epochs
        assert any(e < cfg.n_epochs for seed_epochs in epochs for e in seed_epochs)
        assert len({tuple(seed_epochs) for seed_epochs in epochs}) > 1


@pytest.mark.parametrize("name", ["ppo_clip", "ppo_penalty"])
def test_seeds_stacked_by_autograd_where_no_gradient_is_written_out(name):
    """A MultiDiscrete actor has no written-out gradient: each seed's autograd pass, one optimiser step."""
    from rlrun.algos.ppo_penalty import PPOPenalty, PPOPenaltyConfig

    space, obs_space = spaces.MultiDiscrete([3, 2]), spaces.Box(-1, 1, (4,))
    algorithm, cfg = ((PPOClip, PPOClipConfig(n_epochs=2, batch_size=128)) if name == "ppo_clip" else
                      (PPOPenalty, PPOPenaltyConfig(policy_epochs=2, critic_epochs=2, batch_size=128)))

    def nets(seed):
        torch.manual_seed(seed)
        return make_networks(cfg, obs_space, space)

    def batch_of(seed, k, actor):
        generator = torch.Generator().manual_seed(10 * seed + k)
        obs = torch.randn(256, 4, generator=generator)
        with torch.no_grad():
            actions = nets(seed)[0](obs).sample()
            log_probs = nets(seed)[0](obs).log_prob(actions)
        adv = torch.randn(256, generator=generator)
        return Batch(obs=obs, actions=actions, log_probs=log_probs, values=torch.zeros(256), advantages=adv, returns=adv)

    rtol, atol = (0, 0) if name == "ppo_clip" else (1e-5, 1e-6)  # PPO-Penalty: its critics fitted together, batched
    check(lambda a, c, s: algorithm(cfg, a, c, s), lambda a, c, s: algorithm.for_seeds(cfg, a, c, s), nets, batch_of,
          updates=2, rtol=rtol, atol=atol)  # PPO-Clip: the same operations seed by seed, bit for bit


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_a2c_seeds_stacked_equal_each_seed_alone(gaussian, optimizer):
    from rlrun.algos.a2c import A2C, A2CConfig

    cfg = A2CConfig(optimizer=optimizer, ent_coef=0.01, learning_rate=1e-2, lr_schedule="linear")
    batch_of = fixed_batches(gaussian, n=40)

    check(lambda a, c, s: A2C(cfg, a, c, s), lambda a, c, s: A2C.for_seeds(cfg, a, c, s),
          lambda seed: networks(gaussian, seed), batch_of, updates=5, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gaussian", [False, True])
def test_ppo_penalty_seeds_stacked_equal_each_seed_alone(gaussian):
    """Each seed's own lambda (adapted from its own KL), shuffling, actor pass; the critics fitted together."""
    from rlrun.algos.ppo_penalty import PPOPenalty, PPOPenaltyConfig

    cfg = PPOPenaltyConfig(policy_epochs=3, critic_epochs=2, batch_size=64, learning_rate=3e-3, kl_target=0.003)
    batch_of = fixed_batches(gaussian, n=256)

    alone = check(lambda a, c, s: PPOPenalty(cfg, a, c, s), lambda a, c, s: PPOPenalty.for_seeds(cfg, a, c, s),
                  lambda seed: networks(gaussian, seed), batch_of, updates=3, rtol=1e-5, atol=1e-6)
    lambdas = {tuple(m["ppo_penalty/kl_coef"] for m in metrics) for _, _, metrics in alone}
    assert len(lambdas) > 1  # the seeds' lambdas went their own ways


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("batched_fisher", [True, False])
def test_trpo_seeds_stacked_equal_each_seed_alone(gaussian, batched_fisher, monkeypatch):
    """Each seed's own conjugate gradient (over the seeds' rows, each stopping on its own residual),
    trust region and line search (its candidates tried in rounds across the seeds); the critics
    fitted together. In float64: in float32 the ten CG iterations amplify the batched products'
    rounding to about 1e-5 in the step, and a seed's CG can stop one iteration earlier or later
    where its r.r is within rounding of ``cg_tol``; in float64 the same maths gives the same
    decisions and the parameters agree to 1e-10. The Fisher products in one batched pass (few
    samples) or seed by seed (many, on a CPU)."""
    from rlrun.algos import trpo
    from rlrun.algos.trpo import TRPO, TRPOConfig

    monkeypatch.setattr(trpo, "STACKED_FISHER_SAMPLES", 10**9 if batched_fisher else 0)

    cfg = TRPOConfig(critic_epochs=2, batch_size=64, max_kl=1.0, cg_tol=1e-4)  # steps the line search may cut
    alone = check(lambda a, c, s: TRPO(cfg, a, c, s), lambda a, c, s: TRPO.for_seeds(cfg, a, c, s),
                  float64_networks(gaussian), float64_batches(gaussian, n=256), updates=3, rtol=1e-10, atol=1e-10)
    # in some update the seeds' CG stopped after different numbers of iterations
    assert any(len({metrics[k]["trpo/cg_iters"] for _, _, metrics in alone}) > 1 for k in range(3))
    if gaussian:  # and their line searches in different rounds
        assert len({metrics[k]["trpo/backtracks"] for _, _, metrics in alone for k in range(3)}) > 1


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("critic_optimizer", ["kfac", "adam"])
def test_acktr_seeds_stacked_equal_each_seed_alone(gaussian, critic_optimizer):
    """Each seed its own K-FAC factors, inverses, trust region and KL check, its Fisher samples from
    its own generator (not torch's global one); the actors' passes written out for all seeds at once,
    the Adam critics fitted together as TRPO's, K-FAC critics seed by seed. In float64, as TRPO's
    test: the factors' eigenvectors (saved in the state) turn with any rounding where eigenvalues
    lie close, so in float32 they differ by more than the parameters do."""
    from rlrun.algos.acktr import ACKTR, ACKTRConfig

    cfg = ACKTRConfig(critic_optimizer=critic_optimizer, critic_epochs=2, critic_batch_size=32, max_kl=0.01,
                      backtrack_coef=0.5)
    def stacked(actors, critics, seeds):
        algo = ACKTR.for_seeds(cfg, actors, critics, seeds)
        assert algo.actor_params is not None  # the written-out passes, not each seed's autograd
        return algo

    torch.manual_seed(123)  # whatever the global generator holds, it is not read
    alone = check(lambda a, c, s: ACKTR(cfg, a, c, s), stacked, float64_networks(gaussian),
                  float64_batches(gaussian, n=64), updates=3, rtol=1e-10, atol=1e-10)
    # some steps passed the KL check at once and others after shrinking: the rounds mattered
    assert {m["acktr/backtracks"] for _, _, metrics in alone for m in metrics} == {0.0, 1.0}
