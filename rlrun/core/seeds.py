"""Several seeds of one configuration stepped together (a batched sweep's group): the helpers an
algorithm uses to hold one run's networks or S seeds' alike."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from rlrun.core.batch import Batch
from rlrun.core.flat_params import FlatParameters, unique_parameters


def flat_parameters(per_seed: Sequence[Sequence[nn.Parameter]], stacked: bool) -> FlatParameters:
    """One run's parameters as one vector, or ``stacked``: each seed's (``per_seed[s]``) as a row of
    one matrix (``FlatParameters.stacked``; a group of one seed too)."""
    return FlatParameters.stacked(per_seed) if stacked else FlatParameters(per_seed[0])


def actor_critic_parameters(actors: Sequence[nn.Module], critics: Sequence[nn.Module]) -> list[list[nn.Parameter]]:
    """Each seed's actor and critic parameters together, a shared encoder's once."""
    return [unique_parameters(actor, critic) for actor, critic in zip(actors, critics)]


def seed_rows(x: Tensor, seeds: int, stacked: bool) -> list[Tensor]:
    """Each seed's part of a batch tensor: its rows of a stacked [S, ...] one, or one run's whole."""
    return [x[s] for s in range(seeds)] if stacked else [x]


def stacked_batch(batches: Sequence[Batch]) -> Batch:
    """The seeds' batches with a leading seed axis [S, T * N, ...]."""
    return Batch(**{key: torch.stack([getattr(b, key) for b in batches]) for key in Batch.TENSORS})


def seed_batches(batch: Batch, seeds: int) -> list[Batch]:
    """Each seed's own batch from a stacked one (``stacked_batch``'s inverse)."""
    return [Batch(**{key: getattr(batch, key)[s] for key in Batch.TENSORS}) for s in range(seeds)]


def seed_by_seed(gradient: Callable[..., tuple[Tensor, ...]], actors: Sequence[nn.Module],
                 critics: Sequence[nn.Module], *tensors: Tensor) -> tuple[Tensor, ...]:
    """``gradient(actor, critic, *inputs)`` of each seed on its rows of ``tensors`` ([S, ...] each),
    its gradient landing in the seed's own parameters; what it returns, stacked over the seeds."""
    results = [gradient(actor, critic, *(x[s] for x in tensors)) for s, (actor, critic) in enumerate(zip(actors, critics))]
    return tuple(torch.stack(values) for values in zip(*results))


def per_seed(values: Tensor | Sequence[Tensor]) -> float | list[float]:
    """A metric of one run as a float, or of S stacked seeds as S floats in seed order."""
    values = torch.stack(list(values)) if not isinstance(values, Tensor) else values
    flat = values.detach().reshape(-1).tolist()
    return flat[0] if len(flat) == 1 else flat


def merge_seeds(metrics: Sequence[dict[str, float]]) -> dict[str, float | list[float]]:
    """The metrics each seed's step returned: one run's as they are, S seeds' as one list a key."""
    if len(metrics) == 1:
        return dict(metrics[0])
    return {key: [m[key] for m in metrics] for key in metrics[0]}


class SeedBySeed:
    """Several seeds' algorithms (each built as for its run alone) behind one ``update`` of the
    stacked batch [S, T * N, ...]: each seed updates on its own rows, one after another. For an
    algorithm whose maths is not stacked (its own per-seed state throughout, e.g. K-FAC's hooks):
    the seeds still share one process and one training loop."""

    def __init__(self, algorithms: Sequence):
        self.algorithms = list(algorithms)

    def update(self, batch: Batch, progress: float) -> dict[str, float | list[float]]:
        rows = seed_batches(batch, len(self.algorithms))
        return merge_seeds([algo.update(row, progress) for algo, row in zip(self.algorithms, rows)])

    def state_dict(self, seed: int = 0) -> dict:
        return self.algorithms[seed].state_dict()

    def load_state_dict(self, state: dict, seed: int = 0) -> None:
        self.algorithms[seed].load_state_dict(state)
