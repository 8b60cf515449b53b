"""An encoder (a CNN) shared by actor and critic, run once for both heads.

Here rather than in ``rlrun/networks.py``, so that the algorithm files that use it import no
gymnasium (``rlrun --cfg job`` loads every algorithm's config without it).
"""

from __future__ import annotations

from torch import Tensor, nn


def shared_encoder(actor: nn.Module, critic: nn.Module) -> nn.Module | None:
    """The encoder actor and critic share (``algo.share_encoder``), else None."""
    encoder = actor.net.encoder
    return encoder if encoder is not None and encoder is critic.net.encoder else None


def shared_features(actor: nn.Module, critic: nn.Module, obs: Tensor) -> tuple[Tensor, bool]:
    """``(features, True)`` when actor and critic share their encoder (``algo.share_encoder``):
    its features of ``obs``, computed once, for ``log_prob_entropy(..., encoded=True)`` and
    ``value(..., encoded=True)``; ``(obs, False)`` otherwise."""
    encoder = shared_encoder(actor, critic)
    return (obs, False) if encoder is None else (encoder(obs), True)
