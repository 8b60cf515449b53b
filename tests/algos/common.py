"""A fixed small batch for one in-process ``update()``, and the update as the trainer runs it."""

from __future__ import annotations

import torch

from rlrun.core.batch import Batch
from rlrun.core.diagnostics import policy_snapshot, update_diagnostics
from rlrun.networks import CategoricalActor, Critic, GaussianActor

OBS_DIM = 4


def networks(gaussian: bool, seed: int = 0) -> tuple[torch.nn.Module, Critic]:
    """A small actor (2-D Gaussian or 3-way Categorical) and critic, seeded."""
    torch.manual_seed(seed)
    actor = (GaussianActor(OBS_DIM, 2, [16, 16], "tanh", True, 0.0) if gaussian
             else CategoricalActor(OBS_DIM, 3, [16, 16], "tanh", True))
    return actor, Critic(OBS_DIM, [16, 16], "tanh", True)


def batch_for(actor: torch.nn.Module, n: int = 256, advantage_scale: float = 5.0, seed: int = 1,
              obs: torch.Tensor | None = None) -> Batch:
    """Observations (``obs``, or n standard-normal vectors of OBS_DIM), actions sampled from
    ``actor`` with their log-probabilities, and random advantages (large by default, so that a
    careless step would overshoot any trust region)."""
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS_DIM, generator=generator) if obs is None else obs
    n = len(obs)
    with torch.no_grad():
        pi = actor(obs)
        actions = pi.sample()
        log_probs = pi.log_prob(actions)
    advantages = advantage_scale * torch.randn(n, generator=generator)
    return Batch(obs=obs, actions=actions, log_probs=log_probs, values=torch.zeros(n),
                 advantages=advantages, returns=advantages.clone())


def update(algo, batch: Batch, progress: float = 0.0) -> dict[str, float]:
    """One ``algo.update`` with the metrics the trainer adds (the exact KL as ``policy/kl`` here,
    whatever the algorithm, policy/entropy, ...)."""
    pi_old = policy_snapshot(algo.actor, batch)
    metrics = algo.update(batch, progress=progress)
    diagnostics = update_diagnostics(algo.actor, pi_old, batch, "policy")
    return {**metrics, **diagnostics}
