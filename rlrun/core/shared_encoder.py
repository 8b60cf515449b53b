"""An encoder (a CNN) shared by actor and critic, run once for both heads.

Here rather than in ``rlrun/networks.py``, so that the algorithm files that use it import no
gymnasium (``rlrun --cfg job`` loads every algorithm's config without it).
"""

from __future__ import annotations

from torch import Tensor, nn


def shared_features(actor: nn.Module, critic: nn.Module, obs: Tensor) -> tuple[Tensor, bool]:
    """``(features, True)`` when actor and critic share their encoder (``algo.share_encoder``):
    its features of ``obs``, computed once, for ``log_prob_entropy(..., encoded=True)`` and
    ``value(..., encoded=True)``; ``(obs, False)`` otherwise."""
    encoder = actor.net.encoder
    if encoder is not None and encoder is critic.net.encoder:
        return encoder(obs), True
    return obs, False
