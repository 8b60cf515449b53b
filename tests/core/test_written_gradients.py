"""The written-out gradients of PPO-Clip's, A2C's and the critics' losses against autograd of the
same losses (core.losses through the networks' autograd path), on random inputs."""

import pytest
import torch

from rlrun.core import written_gradients
from rlrun.core.losses import clipped_surrogate, value_loss
from rlrun.networks import BernoulliActor, CategoricalActor, Critic, GaussianActor

B, D = 48, 5


def nets(head: str, activation: str, hidden=(16, 16)):
    torch.manual_seed(0)
    if head == "categorical":
        actor, actions = CategoricalActor(D, 3, list(hidden), activation, True), torch.randint(0, 3, (B,))
    else:
        actor, actions = GaussianActor(D, 2, list(hidden), activation, True, -0.3), torch.randn(B, 2)
    actor.net.linears[-1].weight.data.normal_()  # a policy far from uniform: ratios and entropies vary
    critic = Critic(D, list(hidden), activation, True)
    actor, critic = actor.double(), critic.double()
    for p in [*actor.parameters(), *critic.parameters()]:
        p.grad = torch.zeros_like(p)
    return actor, critic, actions


def grads(*modules):
    return [p.grad.clone() for m in modules for p in m.parameters()]


def assert_close(mine, reference):
    for a, b in zip(mine, reference):
        assert (a - b).abs().max() <= 1e-6 * b.abs().max().clamp(min=1e-12), (a, b)


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("ppo, clip_value_eps, ent_coef", [(True, None, 0.0), (True, 0.2, 0.01), (False, None, 0.01)])
def test_policy_value_gradient_equals_autograd(head, activation, ppo, clip_value_eps, ent_coef):
    actor, critic, actions = nets(head, activation)
    obs, advantages, returns = torch.randn(B, D).double(), torch.randn(B).double(), torch.randn(B).double()
    old_values = torch.randn(B).double() * 0.3
    with torch.no_grad():
        old_log_prob = actor.log_prob_entropy(obs, actions)[0] + 0.3 * torch.randn(B).double()
    clip_eps = 0.2 if ppo else None
    # autograd, as PPO-Clip and A2C compute it
    log_prob, entropy = actor.log_prob_entropy(obs, actions)
    if ppo:
        ratio = (log_prob - old_log_prob).exp()
        assert ((ratio - 1).abs() > clip_eps).any() and ((ratio - 1).abs() < clip_eps).any()  # both sides of the clip
        policy_loss = -clipped_surrogate(log_prob, old_log_prob, advantages, clip_eps)
    else:
        policy_loss = -(log_prob * advantages).mean()
    v_loss = value_loss(critic.value(obs), returns, old_values, clip_value_eps)
    (policy_loss + 0.5 * v_loss - ent_coef * entropy.mean()).backward()
    reference = grads(actor, critic)
    assert written_gradients.applies(actor, critic)
    terms = written_gradients.policy_value_gradient(
        actor, critic, obs, actions, advantages, returns, vf_coef=0.5, ent_coef=ent_coef,
        old_log_prob=old_log_prob if ppo else None, clip_eps=clip_eps, old_values=old_values,
        clip_value_eps=clip_value_eps)
    assert_close(grads(actor, critic), reference)
    torch.testing.assert_close(terms.policy_loss, policy_loss.detach())
    torch.testing.assert_close(terms.value_loss, v_loss.detach())
    torch.testing.assert_close(terms.log_prob, log_prob.detach())
    torch.testing.assert_close(terms.entropy, entropy.mean().detach())


def test_value_gradient_equals_autograd():
    _, critic, _ = nets("categorical", "tanh", hidden=(8, 8, 8))
    obs, returns = torch.randn(B, D).double(), torch.randn(B).double()
    value_loss(critic.value(obs), returns).backward()
    reference = grads(critic)
    loss = written_gradients.value_gradient(critic, obs, returns)
    assert_close(grads(critic), reference)
    torch.testing.assert_close(loss, value_loss(critic.value(obs), returns).detach())


def test_other_heads_and_encoders_are_left_to_autograd():
    critic = Critic(D, [8], "tanh", True)
    assert written_gradients.applies(None, critic)
    assert not written_gradients.applies(BernoulliActor(D, 3, [8], "tanh", True), critic)
    from rlrun.networks import CNN

    cnn = CNN((1, 10, 10), "small", 16, 1.0)
    assert not written_gradients.applies(CategoricalActor(16, 2, [8], "tanh", True, encoder=cnn), critic)


@pytest.mark.parametrize("name", ["ppo_clip", "a2c"])
def test_the_first_order_algorithms_take_the_written_out_path_for_mlps(name):
    from rlrun.algos.registry import algorithms

    registration = algorithms()[name]
    for make_actor, expected in ((lambda: CategoricalActor(D, 2, [8], "tanh", True), True),
                                 (lambda: GaussianActor(D, 2, [8], "tanh", True, 0.0), True),
                                 (lambda: BernoulliActor(D, 2, [8], "tanh", True), False)):
        algo = registration.algorithm(registration.config(), make_actor(), Critic(D, [8], "tanh", True), 0)
        assert algo.written_out is expected


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
@pytest.mark.parametrize("ppo, clip_value_eps, ent_coef", [(True, 0.2, 0.01), (False, None, 0.01)])
def test_stacked_seeds_get_each_seed_s_own_gradient_and_terms(head, ppo, clip_value_eps, ent_coef):
    """Three seeds' networks stacked (FlatParameters.stacked) and their minibatches [S, B, ...]:
    one batched pass gives every seed the gradient and the loss terms of its own unstacked pass."""
    from rlrun.core.flat_params import FlatParameters, unique_parameters

    seeds = []
    for s in range(3):
        actor, critic, actions = nets(head, "tanh")
        with torch.no_grad():
            for p in [*actor.parameters(), *critic.parameters()]:
                p.add_(0.2 * s * torch.randn_like(p))  # different networks
        seeds.append((actor, critic, actions + 0 if head == "gaussian" else actions.roll(s)))
    data = [[torch.randn(B, D).double(), torch.randn(B).double(), torch.randn(B).double(), torch.randn(B).double() * 0.3]
            for _ in seeds]
    kwargs = dict(vf_coef=0.5, ent_coef=ent_coef, clip_eps=0.2 if ppo else None, clip_value_eps=clip_value_eps)
    alone = []
    for (actor, critic, actions), (obs, advantages, returns, old_values) in zip(seeds, data):
        with torch.no_grad():
            old_log_prob = actor.log_prob_entropy(obs, actions)[0] + 0.3 if ppo else None
        flat = FlatParameters(unique_parameters(actor, critic))
        terms = written_gradients.policy_value_gradient(actor, critic, obs, actions, advantages, returns,
                                                        old_log_prob=old_log_prob, old_values=old_values, **kwargs)
        alone.append((flat.vector.grad.clone(), terms, old_log_prob))
    stacked = FlatParameters.stacked([unique_parameters(actor, critic) for actor, critic, _ in seeds])
    stack = lambda i: torch.stack([d[i] for d in data])  # noqa: E731
    terms = written_gradients.policy_value_gradient(
        seeds[0][0], seeds[0][1], stack(0), torch.stack([a for _, _, a in seeds]), stack(1), stack(2),
        old_log_prob=torch.stack([a[2] for a in alone]) if ppo else None, old_values=stack(3), stacked=stacked,
        **kwargs)
    assert terms.policy_loss.shape == terms.value_loss.shape == terms.entropy.shape == (3,)
    for s, (grad, one, _) in enumerate(alone):
        torch.testing.assert_close(stacked.vector.grad[s], grad, rtol=1e-12, atol=1e-12)
        for mine, reference in zip(terms, one):
            torch.testing.assert_close(mine[s], reference, rtol=1e-12, atol=1e-12)
    loss = written_gradients.value_gradient(seeds[0][1], stack(0), stack(2), stacked=stacked)
    for s, (actor, critic, _) in enumerate(seeds):
        torch.testing.assert_close(loss[s], written_gradients.value_gradient(critic, data[s][0], data[s][2]))


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_ratio_surrogate_gradient_equals_autograd(head, activation):
    """TRPO's g (Alg 5.22 step 3): the gradient of mean(pi / pi_old A), as autograd gives it."""
    from rlrun.core.losses import ratio_surrogate

    actor, _, actions = nets(head, activation)
    obs, advantages = torch.randn(B, D).double(), torch.randn(B).double()
    with torch.no_grad():
        old_log_prob = actor.log_prob_entropy(obs, actions)[0] + 0.3 * torch.randn(B).double()
    surrogate = ratio_surrogate(actor(obs).log_prob(actions), old_log_prob, advantages)
    surrogate.backward()
    reference = grads(actor)
    for p in actor.parameters():
        p.grad.zero_()
    mine = written_gradients.ratio_surrogate_gradient(actor, obs, actions, old_log_prob, advantages)
    torch.testing.assert_close(mine, surrogate.detach(), rtol=1e-12, atol=1e-12)
    assert_close(grads(actor), reference)


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
def test_kl_penalty_gradient_equals_autograd(head, activation, ent_coef):
    """PPO-Penalty's step 3: the gradient of -(mean(r A) - lambda KL(pi_old || pi) + ent_coef H)."""
    from torch.distributions import kl_divergence

    from rlrun.core.losses import ratio_surrogate

    actor, _, actions = nets(head, activation)
    obs, advantages = torch.randn(B, D).double(), torch.randn(B).double()
    with torch.no_grad():  # pi_old: the actor a step ago
        pi_old = actor(obs)
        old_log_std = actor.log_std.clone() if head == "gaussian" else None
        old_out = pi_old.logits if head == "categorical" else pi_old.base_dist.loc
        for p in actor.parameters():
            p.add_(0.1 * torch.randn_like(p))
    old_log_prob = pi_old.log_prob(actions)
    pi = actor(obs)
    surrogate, kl = ratio_surrogate(pi.log_prob(actions), old_log_prob, advantages), kl_divergence(pi_old, pi).mean()
    assert kl > 1e-3
    (-(surrogate - 1.7 * kl + ent_coef * pi.entropy().mean())).backward()
    reference = grads(actor)
    mine = written_gradients.kl_penalty_gradient(actor, obs, actions, old_log_prob, advantages, old_out, old_log_std,
                                                 1.7, ent_coef)
    assert_close(grads(actor), reference)
    torch.testing.assert_close(mine.surrogate, surrogate.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mine.kl, kl.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_a2c_policy_gradient_equals_autograd(head, activation):
    """ACKTR's objective, -mean(log pi(a|s) A) - ent_coef H, from a pass already made."""
    actor, _, actions = nets(head, activation)
    obs, advantages = torch.randn(B, D).double(), torch.randn(B).double()
    log_prob, entropy = actor.log_prob_entropy(obs, actions)
    loss = -(log_prob * advantages).mean() - 0.01 * entropy.mean()
    loss.backward()
    reference = grads(actor)
    for p in actor.parameters():
        p.grad.fill_(7.0)  # overwritten, not added to
    forward = written_gradients.MLPPass.of(actor.net, obs)
    mine = written_gradients.policy_gradient(actor, forward, actions, advantages, 0.01)
    torch.testing.assert_close(mine, loss.detach(), rtol=1e-12, atol=1e-12)
    assert_close(grads(actor), reference)


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_score_output_gradients_give_the_kfac_statistics_of_its_hooks(head, activation):
    """K-FAC's Fisher statistics (core.kfac) from the written pass's layer inputs and output
    gradients, against those its hooks record from autograd of -mean log pi(a|s)."""
    from rlrun.core.kfac import KFAC

    actor, _, actions = nets(head, activation, hidden=(16, 8))
    obs = torch.randn(B, D).double()
    hooked, written = (KFAC(actor, stat_decay=0.0) for _ in range(2))
    with hooked.capture_statistics():
        (-actor(obs).log_prob(actions).mean()).backward()
    for p in actor.parameters():
        p.grad.fill_(3.0)
    forward = written_gradients.MLPPass.of(actor.net, obs)
    score = written_gradients.score_output_gradients(actor, forward, actions)
    written.update_factors([[(a, g)] for a, g in zip(forward.inputs, score)])
    for mine, theirs in zip(written.layers, hooked.layers):
        torch.testing.assert_close(mine.A, theirs.A, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(mine.S, theirs.S, rtol=1e-10, atol=1e-14)
    assert all(bool((p.grad == 3.0).all()) for p in actor.parameters())  # no parameter's gradient is written


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
def test_stacked_policy_and_surrogate_gradient_are_each_seed_s_own(head):
    """``policy_of`` and ``ratio_surrogate_gradient`` over three stacked seeds: each seed's
    distribution (its log-probabilities, its KL to another) and gradient as its own pass gives them."""
    from torch.distributions import kl_divergence

    from rlrun.core.flat_params import FlatParameters

    seeds = []
    for s in range(3):
        actor, _, actions = nets(head, "tanh")
        with torch.no_grad():
            for p in actor.parameters():
                p.add_(0.2 * s * torch.randn_like(p))
        seeds.append((actor, actions if head == "gaussian" else actions.roll(s), torch.randn(B, D).double(),
                      torch.randn(B).double()))
    alone = []
    for actor, actions, obs, advantages in seeds:
        with torch.no_grad():
            pi = actor(obs)
        old_log_prob = pi.log_prob(actions) - 0.1
        flat = FlatParameters(list(actor.parameters()))
        surrogate = written_gradients.ratio_surrogate_gradient(actor, obs, actions, old_log_prob, advantages)
        alone.append((pi, old_log_prob, flat.vector.grad.clone(), surrogate))
    stacked = FlatParameters.stacked([list(actor.parameters()) for actor, *_ in seeds])
    obs, actions, advantages = (torch.stack([seed[i] for seed in seeds]) for i in (2, 1, 3))
    pi = written_gradients.policy_of(seeds[0][0], obs, stacked)
    assert pi.batch_shape == (3, B)
    surrogate = written_gradients.ratio_surrogate_gradient(seeds[0][0], obs, actions,
                                                           torch.stack([a[1] for a in alone]), advantages, stacked)
    for s, (pi_alone, _, grad, surrogate_alone) in enumerate(alone):
        torch.testing.assert_close(pi.log_prob(actions)[s], pi_alone.log_prob(actions[s]), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(stacked.vector.grad[s], grad, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(surrogate[s], surrogate_alone, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # every seed moved (the modules' parameters are views into the rows)
        stacked.vector.add_(0.05 * torch.randn_like(stacked.vector))
    kl = kl_divergence(pi, written_gradients.policy_of(seeds[0][0], obs, stacked)).mean(-1)
    for s, ((actor, *_), (pi_alone, *_)) in enumerate(zip(seeds, alone)):
        with torch.no_grad():
            expected = kl_divergence(pi_alone, actor(obs[s])).mean()
        assert expected > 1e-4
        torch.testing.assert_close(kl[s], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
def test_diagnostics_of_seeds_from_one_pass_are_each_seed_s_own(head):
    """The group's diagnostics after an update (pi_old snapshot, KL, entropy, explained variance),
    from one pass of all seeds' actors, against each seed's own (``update_diagnostics``); a seed
    whose returns are all equal has no explained variance, as alone."""
    from rlrun.core.batch import Batch
    from rlrun.core.diagnostics import seeds_update_diagnostics, update_diagnostics
    from rlrun.core.seeds import stacked_batch

    actors, batches = [], []
    for s in range(3):
        actor, _, actions = nets(head, "tanh")
        with torch.no_grad():
            for p in actor.parameters():
                p.add_(0.2 * s * torch.randn_like(p))
        returns = torch.full((B,), 1.0).double() if s == 2 else torch.randn(B).double()
        actors.append(actor)
        batches.append(Batch(obs=torch.randn(B, D).double(), actions=actions, log_probs=torch.zeros(B).double(),
                             values=torch.randn(B).double(), advantages=torch.randn(B).double(), returns=returns))
    batch = stacked_batch(batches)
    pi_old = written_gradients.policies_of(actors, batch.obs)
    alone_pi_old = [actor.distribution_of(b.obs) for actor, b in zip(actors, batches)]
    with torch.no_grad():  # the update moved every seed
        for actor in actors:
            for p in actor.parameters():
                p.add_(0.05 * torch.randn_like(p))
    together = seeds_update_diagnostics(actors, pi_old, batch, "ppo_clip")
    for s, (actor, b, old) in enumerate(zip(actors, batches, alone_pi_old)):
        alone = update_diagnostics(actor, old, b, "ppo_clip")
        assert together[s].keys() == alone.keys() and ("value/explained_variance" in alone) == (s != 2)
        assert alone["ppo_clip/kl"] > 1e-4
        for key, value in alone.items():
            assert together[s][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
