"""What every update is judged by, computed once by the trainer for whichever algorithm ran it."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Distribution, kl_divergence

from rlrun.core.batch import Batch
from rlrun.core.losses import explained_variance
from rlrun.core.written_gradients import policies_of
from rlrun.errors import NumericalError


def policy_snapshot(actor: nn.Module, batch: Batch) -> Distribution:
    """pi_old: the policy's distributions on the batch before the update (the rollout's, when it
    computed them on the way)."""
    if batch.pi_old is not None:
        return batch.pi_old
    with torch.no_grad():
        return actor.distribution_of(batch.obs)


def update_diagnostics(actor: nn.Module, pi_old: Distribution, batch: Batch, algo: str) -> dict[str, float]:
    """After an update: the exact mean KL(pi_old || pi_new) on the batch (the quantity the trust
    regions bound), as ``<algo>/kl`` beside the algorithm's own bound or target, the new policy's
    mean entropy, and how much of the returns' variance the critic explained when the batch was
    collected (left out for a batch whose returns are all equal, where it is undefined: a solved
    deterministic task, not a numerical failure)."""
    with torch.no_grad():
        pi_new = actor.distribution_of(batch.obs)
        return _diagnostics(algo, float(kl_divergence(pi_old, pi_new).mean()), float(pi_new.entropy().mean()),
                            float(explained_variance(batch.values, batch.returns)))


def seeds_update_diagnostics(actors: list[nn.Module], pi_old: Distribution, batch: Batch, algo: str) -> list[dict[str, float]]:
    """:func:`update_diagnostics` of each seed of a stacked batch ([S, B, ...]) from one pass of all
    their actors, MLPs with a written-out head (``pi_old``: ``rollout.seeds_batch``'s)."""
    pi_new = policies_of(actors, batch.obs)
    rows = zip(kl_divergence(pi_old, pi_new).mean(-1).tolist(), pi_new.entropy().mean(-1).tolist(),
               explained_variance(batch.values, batch.returns).tolist())
    return [_diagnostics(algo, *row) for row in rows]


def _diagnostics(algo: str, kl: float, entropy: float, explained: float) -> dict[str, float]:
    metrics = {f"{algo}/kl": kl, "policy/entropy": entropy}
    if math.isfinite(explained):
        metrics["value/explained_variance"] = explained
    return metrics


def check_finite(metrics: dict[str, float], modules: list[nn.Module], iteration: int, algo: str) -> None:
    """Stop where a non-finite value first shows: the update's metrics, then the parameters."""
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise NumericalError(f"{algo}: non-finite {key}={value} at iteration {iteration}")
    params = [param for module in modules for param in module.parameters()]
    with torch.no_grad():  # one reduction for all (a sum is finite only if every term is), then find the culprit
        total = torch.cat([param.reshape(-1) for param in params]).sum() if params else torch.zeros(())
    if torch.isfinite(total):
        return
    for module in modules:
        for name, param in module.named_parameters():
            if not torch.isfinite(param).all():
                raise NumericalError(f"{algo}: non-finite parameter {type(module).__name__}.{name} after iteration {iteration}")
