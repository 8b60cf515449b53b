"""The flat-vector Adam and RMSprop against torch.optim, step for step."""

import pytest
import torch

from rlrun.core.optimizers import Adam, RMSprop


def quadratic_steps(make_ours, make_reference, steps: int = 50) -> None:
    """Both optimisers minimise the same ill-conditioned quadratic from the same point, lr changed halfway."""
    torch.manual_seed(0)
    scales = torch.logspace(-2, 2, 40)
    start = torch.randn(40)
    ours, ref = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    ours.grad = torch.zeros_like(ours)
    opt, ref_opt = make_ours(ours), make_reference(ref)
    for i in range(steps):
        if i == steps // 2:
            opt.lr = 3e-3
            for group in ref_opt.param_groups:
                group["lr"] = 3e-3
        for p in (ours, ref):
            p.grad = (scales * p.detach() + 0.1 * torch.randn(40, generator=torch.Generator().manual_seed(i))).clone()
        opt.step()
        ref_opt.step()
        torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    assert not torch.equal(ours.detach(), start)  # it moved


@pytest.mark.parametrize("fused", [False, True])
def test_adam_equals_torch_adam_step_for_step(fused):
    quadratic_steps(lambda p: Adam(p, lr=1e-2, eps=1e-5),
                    lambda p: torch.optim.Adam([p], lr=1e-2, eps=1e-5, fused=fused, foreach=False if not fused else None))


def test_adam_betas_are_used():
    quadratic_steps(lambda p: Adam(p, lr=1e-2, betas=(0.5, 0.9), eps=1e-8),
                    lambda p: torch.optim.Adam([p], lr=1e-2, betas=(0.5, 0.9), eps=1e-8))


def test_rmsprop_equals_torch_rmsprop_step_for_step():
    quadratic_steps(lambda p: RMSprop(p, lr=7e-4, alpha=0.99, eps=1e-5),
                    lambda p: torch.optim.RMSprop([p], lr=7e-4, alpha=0.99, eps=1e-5))


@pytest.mark.parametrize("make", [lambda p: Adam(p, lr=1e-2), lambda p: RMSprop(p, lr=1e-2)])
def test_a_restored_optimizer_continues_exactly(make):
    p = torch.nn.Parameter(torch.randn(10))
    p.grad = torch.randn(10)
    opt = make(p)
    for _ in range(3):
        opt.step()
    saved, saved_p = opt.state_dict(), p.detach().clone()
    opt.step()
    after = p.detach().clone()
    q = torch.nn.Parameter(saved_p.clone())
    q.grad = p.grad.clone()
    restored = make(q)
    restored.load_state_dict(saved)
    restored.step()
    assert torch.equal(q.detach(), after)


@pytest.mark.parametrize("ours, torch_optimizer", [
    (lambda p: Adam(p, lr=1e-2), lambda p: torch.optim.Adam([p], lr=1e-2)),
    (lambda p: RMSprop(p, lr=1e-2), lambda p: torch.optim.RMSprop([p], lr=1e-2)),
])
def test_a_torch_optim_state_from_an_earlier_checkpoint_is_continued(ours, torch_optimizer):
    start, grad = torch.randn(10), torch.randn(10)
    p, q = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    p.grad, q.grad = grad.clone(), grad.clone()
    reference = torch_optimizer(p)
    empty = reference.state_dict()  # before the first step: no state yet
    for _ in range(3):
        reference.step()
    mine = ours(q)
    mine.load_state_dict(empty)
    assert mine.steps == 0
    for _ in range(3):
        mine.step()
    mine.load_state_dict(reference.state_dict())
    reference.step()
    mine.step()
    torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)


def test_adam_on_stacked_rows_steps_each_row_as_adam_alone_and_only_the_rows_asked():
    """A [S, P] vector: each row follows the unstacked Adam of that row alone, with its own step
    count; a row left out of ``step(rows)`` keeps its parameters and moments, and its bias
    correction continues from its own count when it steps again."""
    torch.manual_seed(0)
    rows = [torch.nn.Parameter(torch.randn(30)) for _ in range(3)]
    stacked = torch.nn.Parameter(torch.stack([r.detach() for r in rows]))
    for p in (*rows, stacked):
        p.grad = torch.zeros_like(p)
    singles = [Adam(r, lr=1e-2, eps=1e-5) for r in rows]
    together = Adam(stacked, lr=1e-2, eps=1e-5)
    masks = [[True, True, True], [True, False, True], [False, False, True], [True, True, True]] * 3
    for i, mask in enumerate(masks):
        grads = torch.randn(3, 30, generator=torch.Generator().manual_seed(i))
        stacked.grad.copy_(grads)
        together.lr = singles[0].lr = singles[1].lr = singles[2].lr = 1e-2 / (1 + i)
        together.step(torch.tensor(mask))
        for row, (single, stepped) in enumerate(zip(singles, mask)):
            if stepped:
                rows[row].grad.copy_(grads[row])
                single.step()
            torch.testing.assert_close(stacked[row], rows[row], rtol=0, atol=0)
            torch.testing.assert_close(together.exp_avg_sq[row], single.exp_avg_sq, rtol=0, atol=0)
    assert together.steps.tolist() == [single.steps for single in singles] == [9, 6, 12]
    restored = Adam(torch.nn.Parameter(stacked.detach().clone()), lr=1e-2)
    for row, single in enumerate(singles):  # each row saves and restores as that seed's own Adam
        saved = together.state_dict(row)
        assert saved["steps"] == single.steps and torch.equal(saved["exp_avg"], single.exp_avg)
        restored.load_state_dict(saved, row)
    assert torch.equal(restored.steps, together.steps) and torch.equal(restored.exp_avg, together.exp_avg)
