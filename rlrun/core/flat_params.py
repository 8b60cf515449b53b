"""Parameters gathered into one contiguous vector, so an optimiser step is one tensor operation.

At the sizes of these algorithms (two 64x64 MLPs, minibatches of 64-512) a gradient step is
dominated by per-tensor overhead, not arithmetic: Adam's, gradient clipping's and zeroing's
Python loops over a dozen parameter tensors cost about as much as the backward pass. Adam is
elementwise and the global gradient norm is the norm of the concatenated gradient, so running
them on one flat vector is the same maths with one kernel call each.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import Tensor, nn


def flat_views(flat: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """``flat`` cut into one view per parameter, in their order, each of its parameter's shape."""
    views, offset = [], 0
    for p in params:
        views.append(flat[offset:offset + p.numel()].view_as(p))
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
        self.params = list(parameters)
        self.vector = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in self.params]))
        self.vector.grad = torch.zeros_like(self.vector)
        self.grad_views = flat_views(self.vector.grad, self.params)
        for p, data, grad in zip(self.params, flat_views(self.vector.data, self.params), self.grad_views):
            p.data, p.grad = data, grad

    def zero_grad(self) -> None:
        if any(p.grad is not view for p, view in zip(self.params, self.grad_views)):
            raise RuntimeError("FlatParameters: a parameter's gradient is no longer a view into the flat vector "
                               "(module.zero_grad() or p.grad = ... replaced it); reset gradients with "
                               "FlatParameters.zero_grad() only")
        self.vector.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> Tensor:
        """Scale the gradient to norm at most ``max_norm`` (as ``nn.utils.clip_grad_norm_``);
        returns the norm before clipping."""
        grad = self.vector.grad
        norm = torch.linalg.vector_norm(grad)
        grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm

    def grads_are_views(self) -> bool:
        """True while every parameter's gradient is still a view into ``self.vector.grad`` (for tests)."""
        base = self.vector.grad.untyped_storage().data_ptr()
        return all(p.grad is not None and p.grad.untyped_storage().data_ptr() == base for p in self.params)


def unique_parameters(*modules: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``modules`` in order, each once: an encoder shared by the actor and the
    critic (``algo.share_encoder``) belongs to both, and must be one slice of the flat vector."""
    return list({id(p): p for m in modules for p in m.parameters()}.values())
