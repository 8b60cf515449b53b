"""Operations on the policy heads' torch distributions."""

from __future__ import annotations

from torch import Tensor
from torch.distributions import Categorical, Distribution, Independent, Normal


def index_distribution(dist: Distribution, idx: Tensor) -> Distribution:
    """The rows ``idx`` of a batch of policy distributions (either head), e.g. pi_old on a minibatch."""
    if isinstance(dist, Categorical):
        return Categorical(logits=dist.logits[idx])
    base = dist.base_dist  # Independent(<base>, 1): Normal (Box), Categorical (MultiDiscrete), Bernoulli (MultiBinary)
    if isinstance(base, Normal):
        return Independent(Normal(base.loc[idx], base.scale[idx]), 1)
    return Independent(type(base)(logits=base.logits[idx]), 1)
