"""Fitting the critic: gradient descent on mean (V_phi(s) - G_hat)^2 (eq. 5.34), used by TRPO and
PPO-Penalty, which fit V after (and apart from) the policy step."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from rlrun.core import written_gradients
from rlrun.core.flat_params import FlatParameters
from rlrun.core.losses import seed_minibatches, shuffled_minibatches, value_loss
from rlrun.core.optimizers import Adam


def fit_value_function(critic: nn.Module | Sequence[nn.Module], params: FlatParameters, optimizer: Adam,
                       obs: Tensor, returns: Tensor, *, epochs: int, batch_size: int,
                       generator: torch.Generator | Sequence[torch.Generator],
                       max_grad_norm: float | None = None) -> Tensor:
    """``epochs`` passes of shuffled minibatches over (obs, returns); returns the mean loss (a tensor).

    Args:
        critic: V_phi, its ``value(obs)`` differentiable in ``params``; an MLP's gradient is written
            out (core.written_gradients, tested against autograd), any other's is autograd's.
            Several seeds stepped together (``FlatParameters.stacked`` params): their critics, with
            ``obs`` and ``returns`` [S, N, ...], one ``generator`` a seed, and the loss one per seed.
        params: the critic's parameters; ``optimizer`` steps ``params.vector``. Nothing else moves.
    """
    critics = list(critic) if isinstance(critic, Sequence) else [critic]
    stacked = params.vector.dim() == 2
    losses, written_out = [], written_gradients.applies(None, critics[0])
    for _ in range(epochs):
        batches = (seed_minibatches([obs, returns], batch_size, generator, torch.ones(len(critics), dtype=torch.bool))
                   if stacked else shuffled_minibatches([obs, returns], batch_size, generator))
        for obs_mb, returns_mb in batches:
            params.zero_grad()
            if written_out:
                loss = written_gradients.value_gradient(critics[0], obs_mb, returns_mb, params if stacked else None)
            elif stacked:
                loss = torch.stack([_autograd_value_loss(c, o, r) for c, o, r in zip(critics, obs_mb, returns_mb)])
            else:
                loss = _autograd_value_loss(critics[0], obs_mb, returns_mb)
            if max_grad_norm is not None:
                params.clip_grad_norm_(max_grad_norm)
            optimizer.step()
            losses.append(loss.detach())
    return torch.stack(losses).mean(0)


def _autograd_value_loss(critic: nn.Module, obs: Tensor, returns: Tensor) -> Tensor:
    loss = value_loss(critic.value(obs), returns)
    loss.backward()
    return loss
