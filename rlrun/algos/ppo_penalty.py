"""PPO-Penalty (Alg 5.23; Schulman et al. 2017, sec. 4): KL-penalised surrogate, lambda adapted
once per iteration from the exact mean KL on the whole batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.distributions import Categorical, kl_divergence

from rlrun.algos.registry import AlgoConfig, Registration
from rlrun.core.batch import Batch
from rlrun.core.contracts import Actor, Critic
from rlrun.core import written_gradients
from rlrun.core.critic import fit_value_function
from rlrun.core.distributions import index_distribution
from rlrun.core.kl_controller import AdaptiveKLController
from rlrun.core.losses import (approx_kl, normalize, ratio_surrogate, scheduled, seed_minibatches,
                               shuffled_minibatches)
from rlrun.core.optimizers import Adam
from rlrun.core.seeds import flat_parameters, per_seed, seed_rows
from rlrun.core.tally import Tally
from rlrun.knobs import ABOVE_ONE, AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, SCHEDULES, knob


@dataclass
class PPOPenaltyConfig(AlgoConfig):
    """Defaults: the PPO paper (Schulman et al. 2017), section 4 (adaptive KL penalty) and its MuJoCo
    setup. Per-env tuning: conf/tuned/ppo_penalty/<env>.yaml."""

    name: str = knob("ppo_penalty", "the algorithm")
    learning_rate: float = knob(3e-4, "the actor's Adam step size (PPO paper)", POSITIVE)
    lr_schedule: str = knob("constant", "constant, or linear to 0 at total_steps (SB3's lin_)",
                            SCHEDULES)
    policy_epochs: int = knob(10, "M, actor epochs over each batch (PPO paper)", AT_LEAST_ONE)
    critic_epochs: int = knob(10, "B, critic epochs over each batch (PPO paper)", AT_LEAST_ONE)
    batch_size: int = knob(64, "minibatch size of both (PPO paper)", AT_LEAST_ONE)
    critic_lr: float = knob(3e-4, "the critic's Adam step size (PPO paper)", POSITIVE)
    kl_target: float = knob(0.01, "d_targ, the KL lambda steers towards (PPO paper)", POSITIVE)
    kl_coef_init: float = knob(1.0, "lambda_0, the initial KL coefficient beta (PPO paper)", POSITIVE)
    kl_tolerance: float = knob(1.5, "a: lambda changes once KL leaves [d_targ / a, d_targ * a] (PPO paper)", ABOVE_ONE)
    kl_adapt_factor: float = knob(2.0, "b: lambda is multiplied or divided by this (PPO paper)", ABOVE_ONE)
    ent_coef: float = knob(0.0, "entropy bonus (PPO paper's MuJoCo runs: 0)", NON_NEGATIVE)
    max_grad_norm: float = knob(0.5, "global gradient-norm clip (as PPO-Clip, SB3)", POSITIVE)
    adam_eps: float = knob(1e-5, "Adam epsilon (SB3)", POSITIVE)


class PPOPenalty:
    """Alg 5.23 for one run, or (:meth:`for_seeds`) for S seeds of one configuration at once: the
    batch [S, T * N, ...], each seed with its own lambda, shuffling and metrics, one Adam step for
    all, their critics fitted together. MLP actors' gradients are written out (core.written_gradients,
    tested against autograd), all seeds' in one pass; other actors' are autograd's, seed by seed."""

    def __init__(self, cfg: PPOPenaltyConfig, actor: Actor, critic: Critic, seed: int):
        self._build(cfg, [actor], [critic], [seed], stacked=False)

    @classmethod
    def for_seeds(cls, cfg: PPOPenaltyConfig, actors: list[Actor], critics: list[Critic], seeds: list[int]) -> PPOPenalty:
        algo = cls.__new__(cls)
        algo._build(cfg, actors, critics, seeds, stacked=True)
        return algo

    def _build(self, cfg: PPOPenaltyConfig, actors: list[Actor], critics: list[Critic], seeds: list[int],
               stacked: bool) -> None:
        self.cfg, self.actors, self.critics, self.stacked = cfg, actors, critics, stacked
        self.actor, self.critic = actors[0], critics[0]
        self.actor_params = flat_parameters([list(actor.parameters()) for actor in actors], stacked)
        self.actor_optimizer = Adam(self.actor_params.vector, lr=cfg.learning_rate, eps=cfg.adam_eps)
        self.critic_params = flat_parameters([list(critic.parameters()) for critic in critics], stacked)  # one vector for Adam
        self.critic_optimizer = Adam(self.critic_params.vector, lr=cfg.critic_lr, eps=cfg.adam_eps)
        self.kl_controllers = [AdaptiveKLController(kl_coef=cfg.kl_coef_init, kl_target=cfg.kl_target,
                                                    kl_tolerance=cfg.kl_tolerance, kl_adapt_factor=cfg.kl_adapt_factor)
                               for _ in seeds]
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]  # minibatch shuffling
        self.tallies = [Tally("ppo_penalty", ("lambda_decreases", "lambda_increases")) for _ in seeds]  # step 5's branches
        self.written_out = written_gradients.applies(self.actor, None)  # MLPs: the gradient without a graph

    def update(self, batch: Batch, progress: float) -> dict[str, float | list[float]]:
        cfg = self.cfg
        lr = scheduled(cfg.learning_rate, cfg.lr_schedule, progress)
        self.actor_optimizer.lr = lr
        advantages = normalize(batch.advantages) if cfg.normalize_advantage else batch.advantages
        kl_coefs = [controller.kl_coef for controller in self.kl_controllers]  # lambda, fixed during this iteration's epochs

        # Alg 5.23 step 2: pi_old <- pi_theta (its distributions on the batch, fixed for the epochs)
        pi_old = self._policies(batch.obs)
        old_out, old_log_std = self._old_outputs(pi_old)  # what the written-out gradient reads of pi_old

        # Step 3: M epochs of gradient ascent on J = surrogate - lambda * mean KL(pi_old || pi) (eq. 5.37)
        policy_terms: dict[str, list[torch.Tensor]] = {"loss/policy": [], "loss/kl_penalty": [],
                                                       "ppo_penalty/approx_kl": []}
        # lambda as the gradient takes it: one run's, or one a seed
        kl_coef = (torch.tensor(kl_coefs, dtype=advantages.dtype, device=advantages.device) if self.stacked
                   else kl_coefs[0])
        # pi_old on each minibatch: its MLP outputs (written out), or its rows of the batch (autograd's)
        old = old_out if self.written_out else torch.arange(advantages.shape[-1], device=advantages.device).expand_as(
            advantages)
        data = [batch.obs, batch.actions, batch.log_probs, advantages, old]
        everyone = torch.ones(len(self.generators), dtype=torch.bool)
        for _ in range(cfg.policy_epochs):
            for minibatch in (seed_minibatches(data, cfg.batch_size, self.generators, everyone) if self.stacked
                              else shuffled_minibatches(data, cfg.batch_size, self.generators[0])):
                self.actor_params.zero_grad()
                terms = self._policy_gradient(pi_old, old_log_std, kl_coef, *minibatch)
                self.actor_params.clip_grad_norm_(cfg.max_grad_norm)
                self.actor_optimizer.step()
                for key, value in zip(policy_terms, terms):
                    policy_terms[key].append(value)

        # Step 4: B epochs of gradient descent on mean (G_hat - V(s))^2
        critic_loss = fit_value_function(self.critics if self.stacked else self.critic, self.critic_params,
                                         self.critic_optimizer, batch.obs, batch.returns, epochs=cfg.critic_epochs,
                                         batch_size=cfg.batch_size,
                                         generator=self.generators if self.stacked else self.generators[0],
                                         max_grad_norm=cfg.max_grad_norm)

        # Step 5: d = exact mean KL(pi_old || pi) on the whole batch; adapt lambda once
        pi = self._policies(batch.obs)
        d = ([kl_divergence(old_s, pi_s).mean().item() for old_s, pi_s in zip(pi_old, pi)] if isinstance(pi, list)
             else kl_divergence(pi_old, pi).mean(-1).reshape(-1).tolist())
        adapt = [controller.update(kl) for controller, kl in zip(self.kl_controllers, d)]
        totals = [tally.add(lambda_decreases=a < 0, lambda_increases=a > 0) for tally, a in zip(self.tallies, adapt)]

        metrics = {key: per_seed(torch.stack(values).mean(0)) for key, values in policy_terms.items()}
        metrics.update({
            "loss/value": per_seed(critic_loss),
            "train/learning_rate": lr,
            "ppo_penalty/kl_coef": per_seed(torch.tensor([c.kl_coef for c in self.kl_controllers], dtype=torch.float64)),
            "ppo_penalty/kl_coef_before": per_seed(torch.tensor(kl_coefs, dtype=torch.float64)),
            "ppo_penalty/kl_target": cfg.kl_target,
            "ppo_penalty/adapt": per_seed(torch.tensor(adapt, dtype=torch.float64)),
            **{key: per_seed(torch.tensor([t[key] for t in totals], dtype=torch.float64)) for key in totals[0]},
        })
        return metrics

    @torch.no_grad()
    def _policies(self, obs: torch.Tensor):
        """pi_theta on the batch: the stacked seeds' in one distribution [S, N] (written-out MLPs),
        else one distribution a seed (a list), or one run's."""
        if self.stacked and self.written_out:
            return written_gradients.policy_of(self.actor, obs, self.actor_params)
        if self.stacked:
            return [actor(o) for actor, o in zip(self.actors, obs)]
        return self.actor(obs)

    def _old_outputs(self, pi_old) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """pi_old as the written-out gradient reads it: its logits or Gaussian means on the batch, and
        a Gaussian's log-std (one a seed when stacked); (None, None) for autograd's."""
        if not self.written_out:
            return None, None
        if isinstance(pi_old, Categorical):
            return pi_old.logits, None
        log_std = self.actor.log_std if not self.stacked else self.actor_params.across_seeds(self.actor.log_std)[0]
        return pi_old.base_dist.loc, log_std.detach().clone()

    def _policy_gradient(self, pi_old, old_log_std: torch.Tensor | None, kl_coef: float | torch.Tensor,
                         obs: torch.Tensor, actions: torch.Tensor, old_log_probs: torch.Tensor,
                         advantages: torch.Tensor, old: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gradient of -(surrogate - lambda KL + ent_coef H) on a minibatch, each seed's into its
        own parameters (``old``: pi_old's outputs on it, or its samples' rows of the batch, as
        ``update`` gives them); (-surrogate, lambda KL, approx KL), one per seed."""
        cfg = self.cfg
        if self.written_out:
            terms = written_gradients.kl_penalty_gradient(
                self.actor, obs, actions, old_log_probs, advantages, old, old_log_std, kl_coef, cfg.ent_coef,
                stacked=self.actor_params if self.stacked else None)
            return -terms.surrogate, kl_coef * terms.kl, approx_kl(terms.log_prob, old_log_probs)
        inputs = (obs, actions, old_log_probs, advantages, old)
        seeds = len(self.actors)
        pis, coefs = (pi_old, kl_coef.tolist()) if self.stacked else ([pi_old], [kl_coef])
        terms = [self._autograd_gradient(actor, pi, coef, *seed_inputs) for actor, pi, coef, seed_inputs in zip(
            self.actors, pis, coefs, zip(*(seed_rows(x, seeds, self.stacked) for x in inputs)))]
        return tuple(torch.stack(values) if self.stacked else values[0] for values in zip(*terms))

    def _autograd_gradient(self, actor: Actor, pi_old, kl_coef: float, obs: torch.Tensor, actions: torch.Tensor,
                           old_log_probs: torch.Tensor, advantages: torch.Tensor,
                           rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pi = actor(obs)
        log_prob = pi.log_prob(actions)
        surrogate = ratio_surrogate(log_prob, old_log_probs, advantages)
        kl = kl_divergence(index_distribution(pi_old, rows), pi).mean()
        objective = surrogate - kl_coef * kl + self.cfg.ent_coef * pi.entropy().mean()
        (-objective).backward()
        return -surrogate.detach(), kl_coef * kl.detach(), approx_kl(log_prob.detach(), old_log_probs)

    def state_dict(self, seed: int = 0) -> dict:
        """The state of one run (of stacked seeds, of the ``seed``-th), as an unstacked run saves it."""
        return {"actor_optimizer": self.actor_optimizer.state_dict(seed),
                "critic_optimizer": self.critic_optimizer.state_dict(seed),
                "kl_controller": self.kl_controllers[seed].state_dict(), "generator": self.generators[seed].get_state(),
                "tally": self.tallies[seed].state_dict()}

    def load_state_dict(self, state: dict, seed: int = 0) -> None:
        self.actor_optimizer.load_state_dict(state["actor_optimizer"], seed)
        self.critic_optimizer.load_state_dict(state["critic_optimizer"], seed)
        self.kl_controllers[seed].load_state_dict(state["kl_controller"])
        self.generators[seed].set_state(state["generator"])
        self.tallies[seed].load_state_dict(state.get("tally"))


REGISTRATION = Registration(
    config=PPOPenaltyConfig, algorithm=PPOPenalty, title="PPO-Penalty",
    summary="Alg 5.23: KL-penalised surrogate, lambda adapted to the KL target",
    trust_region_key="kl_target",
    charts={"KL vs target d_targ": ["ppo_penalty/kl", "ppo_penalty/kl_target"],
            "lambda (KL coefficient)": ["ppo_penalty/kl_coef"],
            "lambda adaptations: decreases and increases of all updates (totals)":
                ["ppo_penalty/updates", "ppo_penalty/lambda_decreases", "ppo_penalty/lambda_increases"]},
)
