"""Operations on the policy heads' torch distributions."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal


def index_distribution(dist: Distribution, idx: Tensor) -> Distribution:
    """The rows ``idx`` of a batch of policy distributions (either head), e.g. pi_old on a minibatch."""
    if isinstance(dist, Categorical):
        return Categorical(logits=dist.logits[idx])
    base = dist.base_dist  # Independent(<base>, 1): Normal (Box), Categorical (MultiDiscrete), Bernoulli (MultiBinary)
    if isinstance(base, Normal):
        return Independent(Normal(base.loc[idx], base.scale[idx]), 1)
    return Independent(type(base)(logits=base.logits[idx]), 1)


@torch.no_grad()
def sample(dist: Distribution, generator: torch.Generator) -> Tensor:
    """A sample of ``dist`` (either head's) drawn from ``generator``, not from torch's global one:
    ``dist.sample()`` with an explicit source of randomness (Categorical by ``multinomial``, Normal
    as loc + scale * N(0, 1), Bernoulli by ``bernoulli``)."""
    if isinstance(dist, Independent):
        return sample(dist.base_dist, generator)
    if isinstance(dist, Normal):
        return dist.loc + dist.scale * standard_normal_like(dist.loc, generator)
    if isinstance(dist, Categorical):
        probs = dist.probs
        drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
        return drawn.reshape(probs.shape[:-1])
    if isinstance(dist, Bernoulli):
        return torch.bernoulli(dist.probs, generator=generator)
    raise TypeError(f"no sampling from {type(dist).__name__} with a generator")


def standard_normal_like(x: Tensor, generator: torch.Generator) -> Tensor:
    """N(0, 1) noise of ``x``'s shape, dtype and device, from ``generator``."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
