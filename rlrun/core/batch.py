"""The data of one iteration, as every algorithm's ``update`` receives it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor
from torch.distributions import Distribution


@dataclass
class Batch:
    """One iteration's data D_k, flattened over time and envs ([T * N, ...])."""

    obs: Tensor
    actions: Tensor
    log_probs: Tensor  # log pi_old(a|s) at collection time
    values: Tensor  # V(s) at collection time
    advantages: Tensor
    returns: Tensor  # G_hat = A_hat + V
    # pi_old(.|s) on the whole batch, when the rollout had it for free: from the features of a CNN
    # shared with the critic, kept at each step (saves the trainer a pass of the CNN), or from the
    # pass that made a batched group's log pi_old (rollout.seeds_batch).
    pi_old: Distribution | None = None

    TENSORS = ("obs", "actions", "log_probs", "values", "advantages", "returns")  # one row a sample

    def __len__(self) -> int:
        return self.obs.shape[0]
