"""ACKTR (sec. 5.9; Wu et al. 2017): an A2C-style actor-critic whose steps are K-FAC natural
gradients scaled into a KL trust region."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import kl_divergence

from rlrun.algos.schemas import ACKTRConfig
from rlrun.core.kfac import KFAC, trust_region_scale
from rlrun.core.natural_gradient import make_fisher_vector_product
from rlrun.core.losses import explained_variance, normalize, value_loss
from rlrun.rollout import Batch


def damped_quadratic(params: list[nn.Parameter], direction: list[torch.Tensor]) -> float:
    """Delta^T (F_hat + damping) Delta = Delta^T g for Delta = (F_hat + damping)^-1 g: K-FAC's own
    estimate of the step's curvature, as OpenAI Baselines' ACKTR uses (``trust_region_fisher=kfac``).

    It underestimates the true curvature along Delta (stale EMA factors, dropped cross-layer
    blocks): on CartPole the measured KL after a step was 40-100x max_kl, hence the exact default.
    """
    return sum((d * p.grad).sum() for p, d in zip(params, direction)).item()


def apply_step(params: list[nn.Parameter], direction: list[torch.Tensor], scale: float) -> float:
    """theta <- theta - scale * direction; returns the step's norm."""
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.sub_(scale * d)
    return scale * torch.sqrt(sum((d * d).sum() for d in direction)).item()


class ACKTR:
    def __init__(self, cfg: ACKTRConfig, actor: nn.Module, critic: nn.Module, seed: int):
        self.cfg, self.actor, self.critic = cfg, actor, critic
        kfac_args = dict(stat_decay=cfg.stat_decay, damping=cfg.damping, inv_every=cfg.inv_every)
        self.actor_kfac = KFAC(actor, **kfac_args)
        # A Gaussian head's state-independent log-std is outside the Linear layers; its exact Fisher
        # block is 2 I (for each action dim, E[(d log N / d log sigma)^2] = 2), so no K-FAC needed.
        self.log_std: nn.Parameter | None = getattr(actor, "log_std", None)
        if cfg.critic_optimizer == "kfac":
            self.critic_kfac, self.critic_optimizer = KFAC(critic, **kfac_args), None
        else:
            self.critic_kfac, self.critic_optimizer = None, torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)

    def update(self, batch: Batch, progress: float) -> dict[str, float]:
        cfg, obs = self.cfg, batch.obs
        advantages = normalize(batch.advantages) if cfg.normalize_advantage else batch.advantages
        with torch.no_grad():
            pi_old = self.actor(obs)

        # Fisher statistics of the actor with actions SAMPLED from pi (the true Fisher, eqs. 5.45-5.48)
        pi = self.actor(obs)
        with self.actor_kfac.capture_statistics():
            fisher_loss = -pi.log_prob(pi.sample()).mean()
            self.actor.zero_grad(set_to_none=True)
            fisher_loss.backward(retain_graph=True)

        # Policy-gradient objective of A2C: -mean log pi(a|s) A_t - ent_coef * H
        log_prob = pi.log_prob(batch.actions)
        entropy = pi.entropy().mean()
        policy_loss = -(log_prob * advantages).mean() - cfg.ent_coef * entropy
        self.actor.zero_grad(set_to_none=True)
        policy_loss.backward()

        # Natural gradient Delta = F_hat^-1 g, scaled by eta = min(eta_max, sqrt(2 delta / Delta^T F_hat Delta))
        params, direction = self.actor_kfac.parameters(), self.actor_kfac.natural_gradient()
        if self.log_std is not None:
            params, direction = [*params, self.log_std], [*direction, self.log_std.grad / 2.0]
        eta, clipped = trust_region_scale(self._actor_quadratic(obs, pi_old, params, direction), cfg.max_kl, cfg.learning_rate)
        step_norm = apply_step(params, direction, eta)

        critic_metrics = self._update_critic(batch)
        with torch.no_grad():
            kl = kl_divergence(pi_old, self.actor(obs)).mean().item()
        eig = self.actor_kfac.factor_eigenvalue_range(0)
        return {
            "policy/kl": kl,
            "policy/entropy": entropy.item(),
            "loss/policy": policy_loss.item(),
            "value/explained_variance": explained_variance(batch.values, batch.returns),
            "train/learning_rate": cfg.learning_rate,
            "acktr/step_scale": eta,
            "acktr/step_clipped": float(clipped),
            "acktr/step_norm": step_norm,
            "acktr/damping": cfg.damping,
            "acktr/factor_eig_min": min(eig.values()),
            "acktr/factor_eig_max": max(eig.values()),
            **critic_metrics,
        }

    def _actor_quadratic(self, obs: torch.Tensor, pi_old, params: list[nn.Parameter], direction: list[torch.Tensor]) -> float:
        """Delta^T F Delta for the trust region: exact along Delta (one Fisher-vector product of the
        mean KL, as TRPO's), or K-FAC's own damped estimate (``trust_region_fisher=kfac``)."""
        if self.cfg.trust_region_fisher == "kfac":
            return damped_quadratic(params, direction)
        fvp = make_fisher_vector_product(kl_divergence(pi_old, self.actor(obs)).mean(), params, damping=0.0)
        flat = torch.cat([d.reshape(-1) for d in direction])
        return float(flat @ fvp(flat))

    def _update_critic(self, batch: Batch) -> dict[str, float]:
        """K-FAC on the critic with the Gauss-Newton Fisher of a unit-variance Gaussian output."""
        values = self.critic(batch.obs)
        loss = value_loss(values, batch.returns)
        if self.critic_kfac is None:
            self.critic_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.critic_optimizer.step()
            return {"loss/value": loss.item()}
        with self.critic_kfac.capture_statistics():
            sampled = (values + torch.randn_like(values)).detach()  # y ~ N(V(s), 1)
            self.critic.zero_grad(set_to_none=True)
            (0.5 * (values - sampled).pow(2).mean()).backward(retain_graph=True)
        self.critic.zero_grad(set_to_none=True)
        loss.backward()
        direction = self.critic_kfac.natural_gradient()
        params = self.critic_kfac.parameters()
        eta, clipped = trust_region_scale(damped_quadratic(params, direction), self.cfg.max_kl, self.cfg.learning_rate)
        apply_step(params, direction, eta)
        return {"loss/value": loss.item(), "acktr/critic_step_scale": eta}

    def state_dict(self) -> dict:
        return {"actor_kfac": self.actor_kfac.state_dict(),
                "critic_kfac": self.critic_kfac.state_dict() if self.critic_kfac else None,
                "critic_optimizer": self.critic_optimizer.state_dict() if self.critic_optimizer else None}

    def load_state_dict(self, state: dict) -> None:
        self.actor_kfac.load_state_dict(state["actor_kfac"])
        if self.critic_kfac:
            self.critic_kfac.load_state_dict(state["critic_kfac"])
        else:
            self.critic_optimizer.load_state_dict(state["critic_optimizer"])
