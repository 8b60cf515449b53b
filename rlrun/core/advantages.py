"""Advantage estimation: GAE (Schulman et al. 2016) with terminated kept apart from truncated."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
    gae_lambda: float,
) -> Tensor:
    """Generalised advantage estimates over a [T, N] rollout.

    ``next_values[t]`` is V(s_{t+1}) of the state actually reached after step t: for a step that
    ended its episode this is V(final observation), not V of the next episode's first state.
    A terminated step never bootstraps (its delta is r - V); a truncated one bootstraps from
    V(final observation). ``done = terminated | truncated`` cuts the recursion at episode ends:

        delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}

    ``gae_lambda = 1`` gives Monte-Carlo returns minus V; returns are ``A + V``.
    """
    not_terminated = 1.0 - terminated.to(rewards.dtype)
    not_done = 1.0 - done.to(rewards.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values
    decay = gamma * gae_lambda * not_done
    advantages = torch.empty_like(rewards)
    if advantages.device.type == "cpu" and not deltas.requires_grad:
        # the same float32 operations on the tensors' memory: numpy's cost a third of torch's at [N]
        deltas, decay, out = deltas.numpy(), decay.numpy(), advantages.numpy()
        running = np.zeros_like(out[0])
    else:
        out, running = advantages, torch.zeros_like(advantages[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + decay[t] * running
        out[t] = running
    return advantages
