"""Fitting the critic: gradient descent on mean (V_phi(s) - G_hat)^2 (eq. 5.34), used by TRPO and
PPO-Penalty, which fit V after (and apart from) the policy step."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from rlrun.core.losses import minibatches, value_loss


def fit_value_function(critic: nn.Module | Callable[[Tensor], Tensor], optimizer: torch.optim.Optimizer, obs: Tensor, returns: Tensor, *,
                       epochs: int, batch_size: int, generator: torch.Generator,
                       max_grad_norm: float | None = None) -> float:
    """``epochs`` passes of shuffled minibatches over (obs, returns); returns the mean loss.
    Only the critic's parameters (those in ``optimizer``) move."""
    losses = []
    for _ in range(epochs):
        for idx in minibatches(len(obs), batch_size, generator):
            loss = value_loss(critic(obs[idx]), returns[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], max_grad_norm)
            optimizer.step()
            losses.append(loss.detach())
    return torch.stack(losses).mean().item()
