"""Fitting the critic: gradient descent on mean (V_phi(s) - G_hat)^2 (eq. 5.34), used by TRPO and
PPO-Penalty, which fit V after (and apart from) the policy step."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlrun.core import written_gradients
from rlrun.core.flat_params import FlatParameters
from rlrun.core.losses import shuffled_minibatches, value_loss
from rlrun.core.optimizers import Adam


def fit_value_function(critic: nn.Module, params: FlatParameters, optimizer: Adam,
                       obs: Tensor, returns: Tensor, *, epochs: int, batch_size: int, generator: torch.Generator,
                       max_grad_norm: float | None = None) -> float:
    """``epochs`` passes of shuffled minibatches over (obs, returns); returns the mean loss.

    Args:
        critic: V_phi, its ``value(obs)`` differentiable in ``params``; an MLP's gradient is written
            out (core.written_gradients, tested against autograd), any other's is autograd's.
        params: the critic's parameters; ``optimizer`` steps ``params.vector``. Nothing else moves.
    """
    losses, written_out = [], written_gradients.applies(None, critic)
    for _ in range(epochs):
        for obs_mb, returns_mb in shuffled_minibatches([obs, returns], batch_size, generator):
            params.zero_grad()
            if written_out:
                loss = written_gradients.value_gradient(critic, obs_mb, returns_mb)
            else:
                loss = value_loss(critic.value(obs_mb), returns_mb)
                loss.backward()
            if max_grad_norm is not None:
                params.clip_grad_norm_(max_grad_norm)
            optimizer.step()
            losses.append(loss.detach())
    return torch.stack(losses).mean().item()
