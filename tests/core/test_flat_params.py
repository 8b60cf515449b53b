import copy

import pytest
import torch
from torch import nn

from rlrun.core.flat_params import FlatParameters


def two_nets() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return (nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)),
            nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)))


def loss_of(a: nn.Module, b: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return a(x).pow(2).sum() + 3.0 * b(x).sum()


def test_adam_and_clipping_on_the_flat_vector_equal_the_per_tensor_reference():
    x = torch.randn(32, 3)
    ref_a, ref_b = two_nets()
    a, b = copy.deepcopy(ref_a), copy.deepcopy(ref_b)
    ref_params = [*ref_a.parameters(), *ref_b.parameters()]
    ref_opt = torch.optim.Adam(ref_params, lr=1e-2)
    flat = FlatParameters([*a.parameters(), *b.parameters()])
    opt = torch.optim.Adam([flat.vector], lr=1e-2, fused=True)
    for _ in range(5):
        ref_opt.zero_grad(set_to_none=True)
        loss_of(ref_a, ref_b, x).backward()
        ref_norm = nn.utils.clip_grad_norm_(ref_params, 0.5)
        ref_opt.step()
        flat.zero_grad()
        loss_of(a, b, x).backward()
        norm = flat.clip_grad_norm_(0.5)
        opt.step()
        torch.testing.assert_close(norm, ref_norm)
        assert ref_norm > 0.5  # the clipping was active
        for p, q in zip(ref_params, [*a.parameters(), *b.parameters()]):
            torch.testing.assert_close(q, p)
            torch.testing.assert_close(q.grad, p.grad)
    assert flat.grads_are_views()


def test_parameters_stay_views_through_load_state_dict_and_keep_their_values():
    a, b = two_nets()
    values = [p.detach().clone() for p in a.parameters()]
    flat = FlatParameters([*a.parameters(), *b.parameters()])
    assert all(torch.equal(p, v) for p, v in zip(a.parameters(), values))
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in a.parameters())
    other, _ = two_nets()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    a.load_state_dict(other.state_dict())  # in place: the vector sees the new values
    assert torch.equal(flat.vector[:24], other[0].weight.detach().reshape(-1))
    with torch.no_grad():
        flat.vector.zero_()
    assert all((p == 0).all() for p in a.parameters())


def test_module_zero_grad_set_to_none_detaches_the_gradients_and_zero_grad_refuses_to_go_on():
    a, b = two_nets()
    flat = FlatParameters([*a.parameters(), *b.parameters()])
    a.zero_grad(set_to_none=True)
    loss_of(a, b, torch.randn(4, 3)).backward()
    assert not flat.grads_are_views()  # the optimiser would step on a stale flat gradient
    with pytest.raises(RuntimeError, match="no longer a view"):
        flat.zero_grad()


def test_check_finite_names_the_first_non_finite_parameter_and_passes_a_large_finite_one():
    from rlrun.core.diagnostics import check_finite
    from rlrun.errors import NumericalError

    actor, critic = two_nets()
    with torch.no_grad():
        critic[2].bias.fill_(3e38)  # finite, though the sum of all parameters overflows
    check_finite({"loss/policy": 1.0}, [actor, critic], 3, "ppo_clip")
    with torch.no_grad():
        critic[0].weight[1, 2] = float("nan")
    with pytest.raises(NumericalError, match=r"non-finite parameter Sequential\.0\.weight after iteration 3"):
        check_finite({"loss/policy": 1.0}, [actor, critic], 3, "ppo_clip")


def test_stacked_seeds_are_rows_and_their_layers_views_across_rows():
    seeds = []
    for s in range(3):
        torch.manual_seed(s)
        seeds.append((nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)), nn.Linear(3, 1)))
    alone = [copy.deepcopy(pair) for pair in seeds]
    flat = FlatParameters.stacked([[*a.parameters(), *b.parameters()] for a, b in seeds])
    assert flat.vector.shape == (3, 8 * 3 + 8 + 2 * 8 + 2 + 3 + 1)
    for (a, b), (ref_a, ref_b) in zip(seeds, alone):  # the values did not change, and each is a view
        assert all(torch.equal(p, q) for p, q in zip([*a.parameters(), *b.parameters()],
                                                     [*ref_a.parameters(), *ref_b.parameters()]))
    weight, weight_grad = flat.across_seeds(seeds[0][0][0].weight)
    assert weight.shape == weight_grad.shape == (3, 8, 3)
    with torch.no_grad():
        weight[1].fill_(7.0)  # the stacked view writes into seed 1's module, and only there
    assert (seeds[1][0][0].weight == 7.0).all() and not (seeds[0][0][0].weight == 7.0).any()

    x = torch.randn(16, 3)
    flat.zero_grad()
    for a, b in seeds:  # each seed's backward lands in its own row
        loss_of(a, b, x).backward()
    assert flat.grads_are_views()
    for s, (a, b) in enumerate(seeds):
        ref_a, ref_b = alone[s]
        if s == 1:
            ref_a[0].weight.data.fill_(7.0)
        loss_of(ref_a, ref_b, x).backward()
        expected = torch.cat([p.grad.reshape(-1) for p in [*ref_a.parameters(), *ref_b.parameters()]])
        torch.testing.assert_close(flat.vector.grad[s], expected)


def test_stacked_clipping_equals_each_seed_clipped_alone():
    grads = torch.randn(4, 50) * torch.tensor([[0.01], [1.0], [10.0], [0.3]])
    stacked = FlatParameters.stacked([[nn.Parameter(torch.zeros(50))] for _ in range(4)])
    stacked.vector.grad.copy_(grads)
    norms = stacked.clip_grad_norm_(0.5)
    for s in range(4):
        one = FlatParameters([nn.Parameter(torch.zeros(50))])
        one.vector.grad.copy_(grads[s])
        assert torch.equal(one.clip_grad_norm_(0.5), norms[s])
        assert torch.equal(one.vector.grad, stacked.vector.grad[s])


def test_stacked_seeds_must_have_the_same_parameters():
    with pytest.raises(ValueError, match="differ in shape or order"):
        FlatParameters.stacked([[nn.Parameter(torch.zeros(3))], [nn.Parameter(torch.zeros(4))]])
