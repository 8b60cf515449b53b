"""Loss terms and batch statistics shared by the policy-gradient algorithms (pure functions)."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor


def normalize(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero mean, unit std (advantage normalisation) along the last axis: a batch, or each seed's
    row of a stacked [S, N] batch."""
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + eps)


def ratio_surrogate(log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor) -> Tensor:
    """Importance-weighted surrogate mean_t[ pi(a|s) / pi_old(a|s) * A_t ] (eq. 5.35, to maximise)."""
    return (torch.exp(log_prob - old_log_prob) * advantages).mean(-1)  # one per seed of a stacked [S, N] batch


def clipped_surrogate(log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, clip_eps: float) -> Tensor:
    """PPO-Clip objective mean_t min(l_t A_t, clip(l_t, 1-eps, 1+eps) A_t) (eq. 5.39-5.41, to maximise)."""
    ratio = torch.exp(log_prob - old_log_prob)
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return torch.min(ratio * advantages, clipped * advantages).mean()


def value_loss(values: Tensor, returns: Tensor, old_values: Tensor | None = None, clip_eps: float | None = None) -> Tensor:
    """Mean squared error to the returns (eq. 5.34); optionally clipped around the old values."""
    loss = (values - returns).pow(2)
    if clip_eps is not None and old_values is not None:
        clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
        loss = torch.max(loss, (clipped - returns).pow(2))
    return loss.mean()


def approx_kl(log_prob: Tensor, old_log_prob: Tensor) -> Tensor:
    """The low-variance estimator E[(r - 1) - log r] of KL(pi_old || pi) with r = pi / pi_old."""
    log_ratio = log_prob - old_log_prob
    return (torch.exp(log_ratio) - 1.0 - log_ratio).mean(-1)  # one per seed of a stacked [S, N] batch


def explained_variance(values: Tensor, returns: Tensor) -> Tensor:
    """1 - Var[G - V] / Var[G] over the samples (the last axis: one per seed of a stacked batch); 1 is
    a perfect critic, 0 no better than a constant (nan where Var[G] = 0)."""
    var = returns.var(-1)
    return torch.where(var == 0, float("nan"), 1.0 - (returns - values).var(-1) / var)


def scheduled(initial: float, schedule: str, progress: float) -> float:
    """``constant``: ``initial``; ``linear``: from ``initial`` at progress 0 to 0 at progress 1
    (SB3's ``lin_`` schedules)."""
    return initial * max(0.0, 1.0 - progress) if schedule == "linear" else initial


def minibatches(size: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor | slice]:
    """Shuffled index minibatches that together cover the whole batch once (the last may be short).

    When one minibatch holds the whole batch it is ``slice(None)``: the losses are means, so the
    order of the samples is irrelevant, and a slice indexes without copying.
    """
    if batch_size >= size:
        yield slice(None)
        return
    order = torch.randperm(size, generator=generator)
    yield from order.split(batch_size)


def shuffled_minibatches(tensors: Sequence[Tensor], batch_size: int, generator: torch.Generator) -> Iterator[list[Tensor]]:
    """The minibatches of :func:`minibatches` (the same rows in the same order, the same draws from
    ``generator``), of each of ``tensors`` ([size, ...] each): every tensor is shuffled once, one
    gather for the epoch, and each minibatch is a slice of it, a view, instead of a gather of its own."""
    size = len(tensors[0])
    if batch_size >= size:
        yield list(tensors)
        return
    order = torch.randperm(size, generator=generator)
    shuffled = [tensor[order] for tensor in tensors]
    for start in range(0, size, batch_size):
        yield [tensor[start:start + batch_size] for tensor in shuffled]


def seed_minibatches(tensors: Sequence[Tensor], batch_size: int, generators: Sequence[torch.Generator],
                     drawing: Tensor) -> Iterator[list[Tensor]]:
    """:func:`shuffled_minibatches` of S seeds at once: ``tensors`` [S, size, ...], seed s's rows
    shuffled by ``generators[s]`` exactly as its own run would; each minibatch [S, batch_size, ...].
    Only the seeds where ``drawing`` ([S] bool) is true draw from their generator (a seed that
    stopped its epochs early would not have started this one); the others keep their order."""
    size = tensors[0].shape[1]
    if batch_size >= size:
        yield list(tensors)
        return
    order = torch.stack([torch.randperm(size, generator=generator) if draws else torch.arange(size)
                         for generator, draws in zip(generators, drawing.tolist())]).to(tensors[0].device)
    shuffled = [tensor.gather(1, order.view(*order.shape, *[1] * (tensor.dim() - 2)).expand_as(tensor))
                for tensor in tensors]
    for start in range(0, size, batch_size):
        yield [tensor[:, start:start + batch_size] for tensor in shuffled]
