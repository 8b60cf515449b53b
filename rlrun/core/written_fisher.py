"""The Fisher-vector product of an MLP policy written out, for TRPO's conjugate gradient.

At theta = theta_old the Hessian of the mean KL(pi_old || pi_theta) is the Fisher matrix (the
chapter's note 5.3), F = mean_i J_i^T M_i J_i, with J_i = d out_i / d theta the Jacobian of the
MLP's output (the logits, or the Gaussian's mean) and M_i the Hessian of the KL in that output:

    categorical   M = diag(p) - p p^T
    Gaussian      M = diag(1 / sigma^2); the log-std block of F is 2 I, the mean/log-std block 0

So F v is J v by one forward-mode pass, M, and J^T by one backward pass: the arithmetic of about
two forward passes, where autograd backpropagates through the graph of the KL's gradient. Tested
against ``core.natural_gradient.make_fisher_vector_product`` (tests/core/test_written_fisher.py).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from rlrun.core.flat_params import FlatParameters, flat_views
from rlrun.core.written_gradients import MLPPass


def fisher_vector_product(actor: nn.Module, obs: Tensor, damping: float, stacked: FlatParameters | None = None,
                          forward: MLPPass | None = None) -> Callable[[Tensor], Tensor]:
    """The closure v -> (F + damping I) v of ``actor`` at its current parameters on ``obs``, for
    an actor that ``written_gradients.applies`` to; v and F v are flat over ``actor.parameters()``
    in their order (as ``core.natural_gradient.flat_grad``). ``stacked``: the actors of S seeds as
    the rows of one ``FlatParameters`` (``actor`` the first seed's), ``obs`` [S, B, ...], v and F v
    [S, P], each row its own seed's product. ``forward``: the actor's pass on ``obs`` at these
    parameters, where the caller has made it already (else it is made here)."""
    params = list(actor.parameters())
    linears = actor.net.linears
    gaussian = actor.distribution == "gaussian"
    position = {id(param): i for i, param in enumerate(params)}
    written = [p for linear in linears for p in (linear.weight, linear.bias)] + ([actor.log_std] if gaussian else [])
    if sorted(map(id, written)) != sorted(position):
        raise ValueError("fisher_vector_product: the actor has parameters besides its MLP's layers and log-std")

    def layers(views: list[Tensor]) -> list[tuple[Tensor, Tensor]]:  # each layer's (weight, bias) part
        return [(views[position[id(linear.weight)]], views[position[id(linear.bias)]]) for linear in linears]

    with torch.no_grad():
        forward = forward or MLPPass.of(actor.net, obs, stacked)  # the layers' inputs, kept for every product
        n = obs.shape[-2]
        if gaussian:
            log_std = actor.log_std if stacked is None else stacked.across_seeds(actor.log_std)[0]
            weight = torch.exp(-2.0 * log_std).unsqueeze(-2) / n  # M / n = diag(1 / sigma^2) / n
        else:
            probs = torch.softmax(forward.out, dim=-1)

    @torch.no_grad()
    def product(v: Tensor) -> Tensor:
        out = torch.empty_like(v)  # every entry is written below
        v_parts, out_parts = flat_views(v, params), flat_views(out, params)
        du = forward.directional(layers(v_parts))  # J v: [n, outputs]
        if gaussian:
            w = du.mul_(weight)
            log_std = position[id(actor.log_std)]
            out_parts[log_std].copy_(v_parts[log_std]).mul_(2.0)
        else:  # (diag(p) - p p^T) du / n
            w = du.sub_((probs * du).sum(-1, keepdim=True)).mul_(probs).div_(n)
        forward.backward(w, into=layers(out_parts))  # J^T w
        return out.add_(v, alpha=damping)

    return product
