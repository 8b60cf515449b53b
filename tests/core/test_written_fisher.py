"""The written-out Fisher-vector product against autograd's Hessian-vector product of the mean KL
(core.natural_gradient, itself checked against a dense Hessian), and against the dense Fisher."""

import pytest
import torch
from torch.distributions import kl_divergence

from rlrun.core.natural_gradient import make_fisher_vector_product
from rlrun.core.written_fisher import fisher_vector_product
from rlrun.networks import CategoricalActor, GaussianActor

B, D = 40, 5


def actor_of(head: str, activation: str):
    torch.manual_seed(0)
    actor = (CategoricalActor(D, 3, [16, 16], activation, True) if head == "categorical"
             else GaussianActor(D, 2, [16, 16], activation, True, -0.3))
    actor.net.linears[-1].weight.data.normal_()  # a policy far from uniform
    return actor.double()


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fisher_vector_product_equals_autograd(head, activation):
    actor = actor_of(head, activation)
    params = list(actor.parameters())
    obs = torch.randn(B, D, dtype=torch.float64)
    with torch.no_grad():
        pi_old = actor(obs)
    reference = make_fisher_vector_product(kl_divergence(pi_old, actor(obs)).mean(), params, damping=0.1)
    written = fisher_vector_product(actor, obs, damping=0.1)
    for seed in range(3):
        v = torch.randn(sum(p.numel() for p in params), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        expected, got = reference(v), written(v)
        assert (got - expected).abs().max() <= 1e-10 * expected.abs().max(), (got - expected).abs().max()


def test_the_dense_fisher_is_symmetric_and_positive_semidefinite():
    actor = actor_of("categorical", "tanh")
    n = sum(p.numel() for p in actor.parameters())
    product = fisher_vector_product(actor, torch.randn(B, D, dtype=torch.float64), damping=0.0)
    dense = torch.stack([product(column) for column in torch.eye(n, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(dense, dense.T, atol=1e-12, rtol=0)
    assert torch.linalg.eigvalsh(dense).min() > -1e-10


def test_an_actor_with_other_parameters_is_refused():
    actor = actor_of("categorical", "tanh")
    actor.extra = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="besides its MLP"):
        fisher_vector_product(actor, torch.randn(B, D, dtype=torch.float64), damping=0.1)


@pytest.mark.parametrize("head", ["categorical", "gaussian"])
def test_stacked_seeds_get_each_seed_s_own_fisher_vector_product(head):
    """Three actors as the rows of one FlatParameters and their observations [S, B, D]: each row of
    F v is the product of that seed's own Fisher with its row of v."""
    from rlrun.core.flat_params import FlatParameters

    actors = []
    for s in range(3):
        actor = actor_of(head, "tanh")
        with torch.no_grad():
            for p in actor.parameters():
                p.add_(0.2 * s * torch.randn_like(p))
        actors.append(actor)
    obs = torch.randn(3, B, D, dtype=torch.float64)
    alone = [fisher_vector_product(actor, obs[s], damping=0.1) for s, actor in enumerate(actors)]
    stacked = FlatParameters.stacked([list(actor.parameters()) for actor in actors])
    product = fisher_vector_product(actors[0], obs, damping=0.1, stacked=stacked)
    v = torch.randn(stacked.vector.shape, dtype=torch.float64)
    together = product(v)
    for s in range(3):
        torch.testing.assert_close(together[s], alone[s](v[s]), rtol=1e-12, atol=1e-12)
