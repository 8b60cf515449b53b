"""What the algorithms may ask of an actor and a critic: the contract ``rlrun.networks`` fulfils.

Two forward paths, one set of parameters. The module forward, ``actor(obs)`` and ``critic(obs)``
(and ``head`` on an encoder's features), runs each ``nn.Linear`` as a module, so K-FAC's hooks see
it (:mod:`rlrun.core.kfac`): ACKTR's Fisher and objective losses are built from it. The fast path,
``act``, ``log_prob_entropy``, ``distribution_of`` and ``value``, gives the same values through
``F.linear`` on the same parameters, which no hook sees: the rollout, the evaluation, the
diagnostics and every loss that must leave K-FAC's statistics alone use it. ``encoded=True``: the
input is already an encoder's features (a CNN shared by actor and critic runs once).
"""

from __future__ import annotations

from typing import Iterator, Protocol

from torch import Tensor, nn
from torch.distributions import Distribution


class Actor(Protocol):
    """pi(.|s). ``distribution`` names the head: ``categorical``, ``gaussian`` (with a
    state-independent ``log_std`` parameter), ``gsde`` (a ``log_std`` matrix [hidden, actions] and
    ``reset_noise(n)``), ``multi_categorical`` or ``bernoulli``; ``net`` is its network (an
    encoder, if any, then Linear/activation layers)."""

    distribution: str
    net: nn.Module

    def __call__(self, obs: Tensor) -> Distribution:
        """pi(.|s) by the module forward (K-FAC sees it)."""

    def head(self, features: Tensor) -> Distribution:
        """pi(.|s) from the encoder's features, by the module forward."""

    def distribution_of(self, obs: Tensor, encoded: bool = False) -> Distribution:
        """pi(.|s) by the fast path."""

    def act(self, obs: Tensor, deterministic: bool = False, generator=None, encoded: bool = False) -> Tensor:
        """A sample of pi(.|s) (or its mode), by the fast path."""

    def log_prob_entropy(self, obs: Tensor, actions: Tensor, encoded: bool = False) -> tuple[Tensor, Tensor]:
        """log pi(a|s) and H(pi(.|s)), differentiable, by the fast path."""

    def parameters(self) -> Iterator[nn.Parameter]: ...


class Critic(Protocol):
    """V(s), with its own network ``net`` (or an encoder shared with the actor)."""

    net: nn.Module

    def __call__(self, obs: Tensor) -> Tensor:
        """V(s) [N] by the module forward (K-FAC sees it)."""

    def head(self, features: Tensor) -> Tensor:
        """V(s) from the encoder's features, by the module forward."""

    def value(self, obs: Tensor, encoded: bool = False) -> Tensor:
        """V(s) [N], differentiable, by the fast path."""

    def parameters(self) -> Iterator[nn.Parameter]: ...
