"""Parameters gathered into one contiguous vector, so an optimiser step is one tensor operation.

At the sizes of these algorithms (two 64x64 MLPs, minibatches of 64-512) a gradient step is
dominated by per-tensor overhead, not arithmetic: Adam's, gradient clipping's and zeroing's
Python loops over a dozen parameter tensors cost about as much as the backward pass. Adam is
elementwise and the global gradient norm is the norm of the concatenated gradient, so running
them on one flat vector is the same maths with one kernel call each.

Several seeds of one configuration (a batched sweep) stack their vectors as the rows of one
[S, P] matrix: each seed's parameters are views into its row, each layer's parameters of all
seeds a [S, ...] view across the rows, and an elementwise optimiser steps every seed at once.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor, nn


def flat_views(flat: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """``flat`` ([..., P]) cut into one view per parameter, in their order, each of its parameter's
    shape after ``flat``'s leading dimensions (a seed's row of a stacked matrix, or all rows at once)."""
    views, offset, lead = [], 0, flat.shape[:-1]
    for p in params:
        views.append(flat[..., offset:offset + p.numel()].view(*lead, *p.shape))
        offset += p.numel()
    return views


class FlatParameters:
    """Moves ``parameters`` into the storage of one vector ``self.vector`` (and their gradients
    into ``self.vector.grad``); give ``[flat.vector]`` to the optimiser.

    Each module parameter stays an ``nn.Parameter`` of the same shape and value, now a view into
    the vector, so forward passes, ``state_dict`` and in-place ``load_state_dict`` are unchanged.
    Backward accumulates into the gradient views in place, so the gradients must be reset with
    ``zero_grad()`` here, never set to None: ``module.zero_grad()`` (set_to_none) would detach them
    and the optimiser would then step on a zero vector; :meth:`zero_grad` refuses to go on if it
    happened. Build it after the modules are on their device (``.to()`` would copy them out of the vector).
    """

    def __init__(self, parameters: Iterable[nn.Parameter]):
        self._gather([list(parameters)], stacked=False)

    @classmethod
    def stacked(cls, per_seed: Sequence[Iterable[nn.Parameter]]) -> FlatParameters:
        """One row of ``self.vector`` ([S, P]) per seed: ``per_seed[s]``, the same shapes in the same
        order for every seed, moved into row s (gradients likewise); see :meth:`across_seeds`."""
        flat = cls.__new__(cls)
        flat._gather([list(params) for params in per_seed], stacked=True)
        return flat

    def _gather(self, rows: list[list[nn.Parameter]], stacked: bool) -> None:
        if len({tuple(p.shape for p in params) for params in rows}) != 1:
            raise ValueError("FlatParameters.stacked: the seeds' parameters differ in shape or order")
        self.params = [p for params in rows for p in params]
        vectors = [torch.cat([p.detach().reshape(-1) for p in params]) for params in rows]
        self.vector = nn.Parameter(torch.stack(vectors) if stacked else vectors[0])
        self.vector.grad = torch.zeros_like(self.vector)
        data_rows, grad_rows = (self.vector.data, self.vector.grad) if stacked else ([self.vector.data], [self.vector.grad])
        # each first-seed parameter's (value, gradient) views across the rows, [S, *shape] when
        # stacked, else its shape: made once (the written-out passes ask at every minibatch step)
        across = zip(flat_views(self.vector.detach(), rows[0]), flat_views(self.vector.grad, rows[0]))
        self._across = dict(zip(rows[0], across))
        self.grad_views = []
        for params, data, grad in zip(rows, data_rows, grad_rows):
            for p, data_view, grad_view in zip(params, flat_views(data, params), flat_views(grad, params)):
                p.data, p.grad = data_view, grad_view
                self.grad_views.append(grad_view)

    def across_seeds(self, p: nn.Parameter) -> tuple[Tensor, Tensor]:
        """(value, gradient) views of parameter ``p`` of the first seed across all seeds, [S, *shape]
        each (of an unstacked vector: views of ``p``'s own value and gradient)."""
        return self._across[p]

    def zero_grad(self) -> None:
        if any(p.grad is not view for p, view in zip(self.params, self.grad_views)):
            raise RuntimeError("FlatParameters: a parameter's gradient is no longer a view into the flat vector "
                               "(module.zero_grad() or p.grad = ... replaced it); reset gradients with "
                               "FlatParameters.zero_grad() only")
        self.vector.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> Tensor:
        """Scale the gradient to norm at most ``max_norm`` (as ``nn.utils.clip_grad_norm_``), each
        seed's row on its own; returns the norm before clipping (one per row when stacked)."""
        grad = self.vector.grad
        norm = torch.linalg.vector_norm(grad, dim=-1, keepdim=True)
        grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm.squeeze(-1)

    def grads_are_views(self) -> bool:
        """True while every parameter's gradient is still a view into ``self.vector.grad`` (for tests)."""
        base = self.vector.grad.untyped_storage().data_ptr()
        return all(p.grad is not None and p.grad.untyped_storage().data_ptr() == base for p in self.params)


def unique_parameters(*modules: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``modules`` in order, each once: an encoder shared by the actor and the
    critic (``algo.share_encoder``) belongs to both, and must be one slice of the flat vector."""
    return list({id(p): p for m in modules for p in m.parameters()}.values())
