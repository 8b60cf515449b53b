"""ACKTR (sec. 5.9; Wu et al. 2017): an actor-critic whose steps are K-FAC natural gradients scaled
into a KL trust region.

The defaults are the paper's discrete (Atari) setting: A2C-style short rollouts over many envs, a
fixed eta_max. The continuous-control setting (conf/tuned/acktr/<MuJoCo env>.yaml) takes large
batches, several K-FAC critic steps per batch and no entropy bonus, as the paper's MuJoCo runs
(OpenAI Baselines ``acktr_cont``). Two modes: a separate critic with its own K-FAC step
(``update``), or, with ``share_encoder`` (images: the paper's Atari network), one CNN shared by
actor and critic and one joint K-FAC step (``_update_joint``). Either way the measured KL after a
step never exceeds ``max_kl``: the step is shrunk or rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.distributions import kl_divergence
from torch.nn.utils import parameters_to_vector

from rlrun.algos.registry import AlgoConfig, Registration
from rlrun.core.batch import Batch
from rlrun.core.contracts import Actor, Critic
from rlrun.core.critic import fit_value_function
from rlrun.core import written_fisher, written_gradients
from rlrun.core.distributions import index_distribution, sample, standard_normal_like
from rlrun.core.flat_params import FlatParameters, flat_views
from rlrun.core.kfac import KFAC
from rlrun.core.losses import normalize, scheduled, value_loss
from rlrun.core.natural_gradient import (LineSearchResult, StepScale, backtracking_line_search,
                                         backtracking_line_search_seeds, make_fisher_vector_product,
                                         trust_region_scale)
from rlrun.core.optimizers import Adam
from rlrun.core.seeds import SeedBySeed, flat_parameters, merge_seeds, per_seed, seed_rows
from rlrun.core.tally import Tally
from rlrun.errors import ConfigError
from rlrun.knobs import (AT_LEAST_ONE, FRACTION_CLOSED, FRACTION_OPEN, NON_NEGATIVE, POSITIVE, SCHEDULES, Check, knob,
                         one_of)


@dataclass
class ACKTRConfig(AlgoConfig):
    """Defaults: OpenAI Baselines ``acktr`` (the paper's discrete setting): 20-step rollouts, Monte-Carlo
    style returns, eta_max 0.25, kfac_clip 0.001 as max_kl, damping 0.01, stat_decay 0.99, ent_coef
    0.01. Actor and critic each get their own K-FAC preconditioner and trust region (the critic's
    Fisher is the Gauss-Newton one of a unit-variance Gaussian output, Wu et al. 2017), or, with
    ``share_encoder``, one of each for both together. The continuous-control setting (Baselines
    ``acktr_cont``): conf/tuned/acktr/<MuJoCo env>.yaml."""

    name: str = knob("acktr", "the algorithm")
    n_steps: int = knob(20, "rollout length T per env per iteration (Baselines acktr: 20)", AT_LEAST_ONE)
    gae_lambda: float = knob(1.0, "GAE lambda; 1.0: the n-step returns of Baselines acktr", FRACTION_CLOSED)
    normalize_advantage: bool = knob(False, "standardise the advantages (Baselines acktr: no; acktr_cont: yes)")
    eta_max: float = knob(0.25, "the largest step scale eta (Baselines acktr's lr 0.25)", POSITIVE)
    max_kl: float = knob(0.001, "delta, the trust region (Baselines' kfac_clip 0.001); the measured KL after a step never exceeds it",
                         POSITIVE)
    max_kl_schedule: str = knob("constant", "constant, or delta linear to 0 at total_steps (as PPO's clip_schedule)",
                                SCHEDULES)
    backtrack_coef: float = knob(0.9, "a step whose measured KL exceeds max_kl is shrunk by this factor ...", FRACTION_OPEN)
    backtrack_iters: int = knob(10, "... up to this many times, else rejected (theta_old kept)",
                                Check(lambda v: v >= 0, "must be >= 0"))
    damping: float = knob(0.01, "Tikhonov damping of the K-FAC factors (Baselines acktr)", NON_NEGATIVE)
    stat_decay: float = knob(0.99, "moving average of the K-FAC factors (Baselines); 0: fresh factors each iteration",
                             Check(lambda v: 0 <= v < 1, "must be in [0, 1) (0: fresh K-FAC factors each iteration)"))
    kfac_dtype: str = knob("float64", "the arithmetic of K-FAC's batch statistics and preconditioning products (the factors "
                           "stay float64); float32 is faster on the Atari network (benchmarks/pixel_update.py)", one_of("float64", "float32"))
    inv_every: int = knob(10, "iterations between K-FAC inverses (Baselines' cold_iter-style refresh)", AT_LEAST_ONE)
    ent_coef: float = knob(0.01, "entropy bonus (Baselines acktr)", NON_NEGATIVE)
    share_encoder: bool = knob(False, "images: one CNN for the actor and the critic (Baselines acktr), one K-FAC of the joint "
                               "Fisher of pi(a|s) N(y; V(s), 1) and one trust region on the joint KL (paper sec. 3.2)")
    trust_region_kl: str = knob("joint", "share_encoder: what max_kl bounds: joint, the KL of pi(a|s) N(y; V(s), 1) (the "
                                "paper's joint distribution), or policy, KL(pi_old || pi) alone (the value's drift is "
                                "logged as acktr/value_kl)", one_of("joint", "policy"))
    vf_coef: float = knob(0.1, "share_encoder: the value loss's weight in the joint objective (Baselines acktr: 0.5, with "
                          "which the value's step took most of the joint KL on MinAtar Breakout: "
                          "benchmarks/results/experiments/acktr-joint-minatar/)", NON_NEGATIVE)
    critic_optimizer: str = knob("kfac", "the critic's optimiser: kfac (the paper) or adam", one_of("kfac", "adam"))
    critic_lr: float = knob(1e-3, "the critic's Adam step size (critic_optimizer=adam only)", POSITIVE)
    critic_batch_size: Optional[int] = knob(
        None, "the Adam critic's minibatch size, critic_epochs shuffled passes as TRPO's critic; None: whole-batch steps",
        AT_LEAST_ONE)
    critic_max_kl: float = knob(0.001, "the K-FAC critic's trust region (Gauss-Newton KL of a unit-variance output)", POSITIVE)
    critic_eta_max: float = knob(0.25, "the K-FAC critic's largest step scale (1: a full Gauss-Newton step)", POSITIVE)
    critic_epochs: int = knob(1, "critic passes per iteration over the batch, whole-batch steps unless critic_batch_size "
                              "(acktr_cont: 25 K-FAC steps)", AT_LEAST_ONE)

    @staticmethod
    def check_combination(cfg) -> None:
        """Knobs of the separate critic's step are refused with ``share_encoder``, in one line and
        before the run starts (``config.validate`` calls this; ``cfg``: the node or the dataclass)."""
        changed = [key for key, differs in (
            ("critic_optimizer", cfg.critic_optimizer != "kfac"), ("critic_epochs", cfg.critic_epochs != 1)) if differs]
        if cfg.share_encoder and changed:
            raise ConfigError(f"algo.{changed[0]}={getattr(cfg, changed[0])!r} is not allowed with algo.share_encoder=true, "
                              "whose one joint K-FAC step of actor and critic keeps that knob's default")


def damped_quadratic(params: list[nn.Parameter], direction: list[torch.Tensor]) -> float:
    """Delta^T (F_hat + damping) Delta = Delta^T g for Delta = (F_hat + damping)^-1 g: K-FAC's own
    estimate of the step's curvature, as OpenAI Baselines' ACKTR uses; the K-FAC critic's trust
    region. (The actor's uses the exact product: this estimate, from stale EMA factors without the
    cross-layer blocks, underestimates the curvature along Delta.)"""
    return sum((d * p.grad).sum() for p, d in zip(params, direction)).item()


def apply_step(params: list[nn.Parameter], direction: list[torch.Tensor], scale: float) -> float:
    """theta <- theta - scale * direction; returns the step's norm."""
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.sub_(scale * d)
    return scale * torch.sqrt(sum((d * d).sum() for d in direction)).item()


class ACKTR:
    """One run's actor-critic, or (:meth:`for_seeds`) S seeds' of one configuration at once: the batch
    [S, T * N, ...], each seed its own K-FAC factors, inverses, trust region and KL check (MLP actors:
    from passes written out for all seeds together; others seed by seed); an Adam critic's fits of
    all seeds together, as TRPO's (core.critic); every metric one per seed."""

    def __init__(self, cfg: ACKTRConfig, actor: Actor, critic: Critic, seed: int):
        self._build(cfg, [actor], [critic], [seed], stacked=False)

    @classmethod
    def for_seeds(cls, cfg: ACKTRConfig, actors: list[Actor], critics: list[Critic],
                  seeds: list[int]) -> ACKTR | SeedBySeed:
        """S seeds of one configuration. With ``share_encoder`` (one K-FAC of a CNN shared by actor and
        critic), each seed's whole update one after another."""
        if cfg.share_encoder:
            return SeedBySeed([cls(cfg, actor, critic, seed) for actor, critic, seed in zip(actors, critics, seeds)])
        algo = cls.__new__(cls)
        algo._build(cfg, actors, critics, seeds, stacked=True)
        return algo

    def _build(self, cfg: ACKTRConfig, actors: list[Actor], critics: list[Critic], seeds: list[int],
               stacked: bool) -> None:
        ACKTRConfig.check_combination(cfg)
        self.cfg, self.actors, self.critics, self.stacked = cfg, actors, critics, stacked
        self.actor, self.critic = actors[0], critics[0]
        kfac_args = dict(stat_decay=cfg.stat_decay, damping=cfg.damping, inv_every=cfg.inv_every,
                         dtype=getattr(torch, cfg.kfac_dtype))
        # Each seed's actor K-FAC; with a shared encoder (one run), one K-FAC over actor and critic
        # together (the shared layers once), which also steps the critic
        self.joint = nn.ModuleDict({"actor": self.actor, "critic": self.critic}) if cfg.share_encoder else None
        self.actor_kfacs = [KFAC(self.joint if cfg.share_encoder else actor, **kfac_args) for actor in actors]
        # A Gaussian head's state-independent log-std is outside the Linear layers; its exact Fisher
        # block is 2 I (for each action dim, E[(d log N / d log sigma)^2] = 2), so no K-FAC needed.
        # gSDE's log-std matrix [hidden, actions] is stepped the same way, g / 2: its exact block
        # is 2 E[w w^T] per action dim (w_i: latent unit i's share of that action's variance, the
        # shares summing to 1), whose diagonal is at most 2; the trust region below measures the
        # whole step, this block's part included, with the exact Fisher.
        self.log_stds: list[nn.Parameter | None] = [getattr(actor, "log_std", None) for actor in actors]
        self.params = [[*kfac.parameters(), *([log_std] if log_std is not None else [])]
                       for kfac, log_std in zip(self.actor_kfacs, self.log_stds)]
        # The critic: K-FAC (the paper), each seed's own; or Adam on one flat vector (a row a seed)
        # as TRPO's critic; neither with a shared encoder, whose joint K-FAC steps the critic
        self.critic_kfacs, self.critic_params, self.critic_optimizer = None, None, None
        if not cfg.share_encoder and cfg.critic_optimizer == "kfac":
            self.critic_kfacs = [KFAC(critic, **kfac_args) for critic in critics]
        elif not cfg.share_encoder:
            self.critic_params = flat_parameters([list(critic.parameters()) for critic in critics], stacked)
            self.critic_optimizer = Adam(self.critic_params.vector, lr=cfg.critic_lr)
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]  # the Adam critic's minibatches
        # the Fisher's sampled actions and targets (each run's own source, not torch's global one)
        device = next(self.actor.parameters()).device
        self.fisher_generators = [torch.Generator(device).manual_seed(seed) for seed in seeds]
        # eta_max binding; the KL check failing
        self.tallies = [Tally("acktr", ("steps_clipped", "steps_rejected")) for _ in seeds]
        # S seeds' MLP actors as the rows of one matrix: their passes written out for all seeds at once
        self.actor_params = (FlatParameters.stacked([list(actor.parameters()) for actor in actors])
                             if stacked and written_gradients.applies(self.actor, None) else None)

    def update(self, batch: Batch, progress: float) -> dict[str, float | list[float]]:
        max_kl = scheduled(self.cfg.max_kl, self.cfg.max_kl_schedule, progress)  # delta at this point of training
        if self.joint is not None:
            return self._update_joint(batch, max_kl)
        advantages = normalize(batch.advantages) if self.cfg.normalize_advantage else batch.advantages
        seeds, inputs = len(self.actors), (batch.obs, batch.actions, advantages)
        if self.actor_params is not None:
            steps = self._policy_steps_together(max_kl, *inputs)
        else:
            steps = [self._policy_step(s, max_kl, *rows)
                     for s, rows in enumerate(zip(*(seed_rows(x, seeds, self.stacked) for x in inputs)))]
        return {**merge_seeds(steps), **self._update_critic(batch)}

    def _policy_step(self, s: int, max_kl: float, obs: torch.Tensor, actions: torch.Tensor,
                     advantages: torch.Tensor) -> dict[str, float]:
        """Seed s's actor step: the K-FAC natural gradient of A2C's objective, scaled into the trust
        region ``max_kl`` and checked there."""
        cfg, actor, kfac, params = self.cfg, self.actors[s], self.actor_kfacs[s], self.params[s]
        features = actor.net.encode(obs)  # a CNN runs once for pi and pi_old
        pi = actor.head(features)
        with torch.no_grad():
            pi_old = actor.head(features)

        # Fisher statistics of the actor with actions SAMPLED from pi (the true Fisher, eqs. 5.45-5.48)
        with kfac.capture_statistics():
            fisher_loss = -pi.log_prob(sample(pi, self.fisher_generators[s])).mean()
            actor.zero_grad(set_to_none=True)
            fisher_loss.backward(retain_graph=True)

        # Policy-gradient objective of A2C: -mean log pi(a|s) A_t - ent_coef * H
        policy_loss = self._policy_loss(pi, actions, advantages)
        actor.zero_grad(set_to_none=True)
        policy_loss.backward()

        # Natural gradient Delta = F_hat^-1 g (the log-std's exact block: g / 2)
        direction = kfac.natural_gradient()
        if self.log_stds[s] is not None:
            direction.append(self.log_stds[s].grad / 2.0)

        # Trust region: eta = min(eta_max, sqrt(2 delta / Delta^T F Delta)), F the exact Fisher along
        # Delta (one Fisher-vector product of the mean KL, as TRPO's); then the step is checked:
        # while the measured KL exceeds delta it is shrunk (backtrack_coef^j), else rejected
        step = parameters_to_vector(direction)
        fvp = make_fisher_vector_product(kl_divergence(pi_old, actor(obs)).mean(), params, damping=0.0)
        eta = trust_region_scale(float(step @ fvp(step)), max_kl, cfg.eta_max)
        scaled_step = eta.scale * step

        def kl_after() -> tuple[float, float]:
            with torch.no_grad():
                return 0.0, kl_divergence(pi_old, actor(obs)).mean().item()

        search = backtracking_line_search(params, -scaled_step, kl_after, max_kl,
                                          cfg.backtrack_coef, cfg.backtrack_iters, require_improvement=False)
        return {"loss/policy": policy_loss.item(), **self._step_metrics(s, eta, search, scaled_step, max_kl)}

    def _policy_steps_together(self, max_kl: float, obs: torch.Tensor, actions: torch.Tensor,
                               advantages: torch.Tensor) -> list[dict[str, float]]:
        """The actor steps of every seed at once, MLP actors (the rows of ``self.actor_params``), each
        as :meth:`_policy_step` takes it: the passes written out for all seeds together
        (core.written_gradients, core.written_fisher), each seed's K-FAC factors, inverses and
        natural gradient from its own rows, the KL checks in rounds that try the next candidate of
        every seed still checking in one pass."""
        cfg, actor, params = self.cfg, self.actor, self.actor_params
        forward = written_gradients.MLPPass.of(actor.net, obs, params)
        pi_old = written_gradients.policy_from(actor, forward.out, params)

        # Fisher statistics with actions SAMPLED from pi, each seed's from its own generator
        sampled = torch.stack([sample(index_distribution(pi_old, s), generator)
                               for s, generator in enumerate(self.fisher_generators)])
        score = written_gradients.score_output_gradients(actor, forward, sampled, params)
        for s, kfac in enumerate(self.actor_kfacs):
            kfac.update_factors([[(a[s], g[s])] for a, g in zip(forward.inputs, score)])

        # Policy-gradient objective of A2C, into every seed's gradient row
        policy_losses = written_gradients.policy_gradient(actor, forward, actions, advantages, cfg.ent_coef, params)

        # Natural gradients Delta = F_hat^-1 g, each seed's (the log-std's exact block: g / 2), as the
        # rows of one matrix laid out as the parameters' (K-FAC lists them in its own order)
        directions = torch.zeros_like(params.vector)
        order = list(actor.parameters())
        across = dict(zip(map(id, order), flat_views(directions, order)))  # each one's [S, *shape] across the seeds
        slots = [across[id(param)] for param in self.params[0]]
        for s, (kfac, log_std) in enumerate(zip(self.actor_kfacs, self.log_stds)):
            direction = kfac.natural_gradient() + ([log_std.grad / 2.0] if log_std is not None else [])
            for slot, part in zip(slots, direction):
                slot[s].copy_(part)

        # Trust region of each seed, F its exact Fisher along its Delta (from the pass above: the
        # parameters have not moved); then the KL checks
        fvp = written_fisher.fisher_vector_product(actor, obs, 0.0, stacked=params, forward=forward)
        etas = [trust_region_scale(q, max_kl, cfg.eta_max) for q in (directions * fvp(directions)).sum(-1).tolist()]
        scaled_steps = directions.new_tensor([eta.scale for eta in etas]).unsqueeze(-1) * directions

        def kl_after() -> tuple[list[float], list[float]]:
            kls = kl_divergence(pi_old, written_gradients.policy_of(actor, obs, params)).mean(-1).tolist()
            return [0.0] * len(kls), kls

        searches = backtracking_line_search_seeds(params.vector, -scaled_steps, [True] * len(etas), kl_after, max_kl,
                                                  cfg.backtrack_coef, cfg.backtrack_iters, require_improvement=False)
        return [{"loss/policy": loss, **self._step_metrics(s, eta, search, scaled_steps[s], max_kl)}
                for s, (loss, eta, search) in enumerate(zip(policy_losses.tolist(), etas, searches))]

    def _update_joint(self, batch: Batch, max_kl: float) -> dict[str, float]:
        """One K-FAC step of actor and critic together, as the paper's Atari runs (Baselines acktr):
        the Fisher is that of the joint distribution p(a, y | s) = pi(a|s) N(y; V(s), 1) (sec. 3.2),
        the objective A2C's policy loss + vf_coef x value loss, and the trust region bounds the
        joint KL, KL(pi_old || pi) + E[(V - V_old)^2] / 2, measured after the step (or, with
        ``trust_region_kl=policy``, the policy's KL alone)."""
        cfg, obs = self.cfg, batch.obs
        advantages = normalize(batch.advantages) if cfg.normalize_advantage else batch.advantages
        features = self.actor.net.encode(obs)  # the shared CNN runs once for pi, V and their old values
        pi, values = self._heads(features)
        with torch.no_grad():
            pi_old, values_old = self.actor.head(features), values.detach()

        # Fisher statistics of the joint distribution, with a ~ pi and y ~ N(V(s), 1) SAMPLED
        kfac, fisher_generator = self.actor_kfacs[0], self.fisher_generators[0]
        with kfac.capture_statistics():
            y = (values + standard_normal_like(values, fisher_generator)).detach()
            fisher_loss = -(pi.log_prob(sample(pi, fisher_generator)) - 0.5 * (values - y).pow(2)).mean()
            self.joint.zero_grad(set_to_none=True)
            fisher_loss.backward(retain_graph=True)

        # The joint objective: -mean log pi(a|s) A_t - ent_coef * H + vf_coef * value loss
        policy_loss = self._policy_loss(pi, batch.actions, advantages)
        critic_loss = value_loss(values, batch.returns)
        self.joint.zero_grad(set_to_none=True)
        (policy_loss + cfg.vf_coef * critic_loss).backward()
        direction = kfac.natural_gradient()
        if self.log_stds[0] is not None:
            direction.append(self.log_stds[0].grad / 2.0)

        def kls() -> tuple[torch.Tensor, torch.Tensor]:  # KL(pi_old || pi) and E[(V - V_old)^2] / 2
            pi, values = self._heads(self.actor.net.encode(obs))
            return kl_divergence(pi_old, pi).mean(), 0.5 * (values - values_old).pow(2).mean()

        def bounded(policy_kl: torch.Tensor, value_kl: torch.Tensor) -> torch.Tensor:  # what max_kl bounds
            return policy_kl + value_kl if cfg.trust_region_kl == "joint" else policy_kl

        # Trust region: eta = min(eta_max, sqrt(2 delta / Delta^T F Delta)), F the joint Fisher (the
        # Hessian of the joint KL at theta_old; the policy's alone with trust_region_kl=policy), then
        # the measured KL checked as in update()
        step = parameters_to_vector(direction)
        quadratic = float(step @ make_fisher_vector_product(bounded(*kls()), self.params[0], damping=0.0)(step))
        eta = trust_region_scale(quadratic, max_kl, cfg.eta_max)
        measured = [0.0, 0.0]  # the policy and value KLs of the last candidate the search evaluated

        def kl_after() -> tuple[float, float]:
            with torch.no_grad():
                policy_kl, value_kl = kls()
            measured[:] = policy_kl.item(), value_kl.item()
            return 0.0, bounded(policy_kl, value_kl).item()

        scaled_step = eta.scale * step
        search = backtracking_line_search(self.params[0], -scaled_step, kl_after, max_kl,
                                          cfg.backtrack_coef, cfg.backtrack_iters, require_improvement=False)
        policy_kl, value_kl = measured if search.accepted else (0.0, 0.0)  # rejected: theta_old kept
        return {
            "loss/policy": policy_loss.item(),
            "loss/value": critic_loss.item(),
            **self._step_metrics(0, eta, search, scaled_step, max_kl),
            "acktr/joint_kl": policy_kl + value_kl,
            "acktr/value_kl": value_kl,
        }

    def _policy_loss(self, pi: torch.distributions.Distribution, actions: torch.Tensor,
                     advantages: torch.Tensor) -> torch.Tensor:
        """A2C's policy-gradient objective, -mean log pi(a|s) A_t - ent_coef * H (to be minimised)."""
        return -(pi.log_prob(actions) * advantages).mean() - self.cfg.ent_coef * pi.entropy().mean()

    def _step_metrics(self, s: int, eta: StepScale, search: LineSearchResult, scaled_step: torch.Tensor,
                      max_kl: float) -> dict[str, float]:
        """Seed s's trust-region step as taken: its scale after the KL check, the check, and K-FAC's state."""
        eig = self.actor_kfacs[s].factor_eigenvalue_range(0)
        return {
            "acktr/max_kl": max_kl,
            "acktr/eta_max": self.cfg.eta_max,
            "acktr/step_scale": eta.scale * search.step_fraction,
            "acktr/step_clipped": float(eta.clipped),
            "acktr/backtracks": float(search.backtracks),
            "acktr/step_accepted": float(search.accepted),
            "acktr/step_norm": search.step_fraction * scaled_step.norm().item(),
            "acktr/damping": self.cfg.damping,
            "acktr/factor_eig_min": min(eig.values()),
            "acktr/factor_eig_max": max(eig.values()),
            **self.tallies[s].add(steps_clipped=eta.clipped, steps_rejected=not search.accepted),
        }

    def _heads(self, features: torch.Tensor) -> tuple[torch.distributions.Distribution, torch.Tensor]:
        """pi(.|s) and V(s) from the shared encoder's features of s, computed once for both (K-FAC
        then sees each of its layers once, with the sum of the two heads' gradients)."""
        return self.actor.head(features), self.critic.head(features)

    def _update_critic(self, batch: Batch) -> dict[str, float | list[float]]:
        """``critic_epochs`` steps on the whole batch: K-FAC with the Gauss-Newton Fisher of a
        unit-variance Gaussian output (Wu et al. 2017, sec. 3.2), seed by seed; or Adam,
        ``critic_epochs`` passes of ``critic_batch_size`` minibatches as TRPO's critic (whole-batch
        steps when None), all seeds together."""
        cfg = self.cfg
        if self.critic_kfacs is None:
            loss = fit_value_function(self.critics if self.stacked else self.critic, self.critic_params,
                                      self.critic_optimizer, batch.obs, batch.returns, epochs=cfg.critic_epochs,
                                      batch_size=cfg.critic_batch_size or batch.returns.shape[-1],
                                      generator=self.generators if self.stacked else self.generators[0])
            return {"loss/value": per_seed(loss)}
        seeds = len(self.critics)
        return merge_seeds([self._kfac_critic_steps(s, *rows) for s, rows in enumerate(zip(
            *(seed_rows(x, seeds, self.stacked) for x in (batch.obs, batch.returns))))])

    def _kfac_critic_steps(self, s: int, obs: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        """Seed s's K-FAC critic: ``critic_epochs`` whole-batch steps, each in its trust region."""
        cfg, critic, kfac = self.cfg, self.critics[s], self.critic_kfacs[s]
        for _ in range(cfg.critic_epochs):
            values = critic(obs)
            loss = value_loss(values, returns)
            with kfac.capture_statistics():
                sampled = (values + standard_normal_like(values, self.fisher_generators[s])).detach()  # y ~ N(V(s), 1)
                critic.zero_grad(set_to_none=True)
                (0.5 * (values - sampled).pow(2).mean()).backward(retain_graph=True)
            critic.zero_grad(set_to_none=True)
            loss.backward()
            direction = kfac.natural_gradient()
            params = kfac.parameters()
            eta = trust_region_scale(damped_quadratic(params, direction), cfg.critic_max_kl,
                                     cfg.critic_eta_max).scale  # 0: no step (e.g. a zero gradient)
            apply_step(params, direction, eta)
        return {"loss/value": loss.item(), "acktr/critic_step_scale": eta}

    def state_dict(self, seed: int = 0) -> dict:
        """The state of one run (of stacked seeds, of the ``seed``-th), as an unstacked run saves it."""
        return {"actor_kfac": self.actor_kfacs[seed].state_dict(),
                "critic_kfac": self.critic_kfacs[seed].state_dict() if self.critic_kfacs else None,
                "critic_optimizer": self.critic_optimizer.state_dict(seed) if self.critic_optimizer else None,
                "generator": self.generators[seed].get_state(),
                "fisher_generator": self.fisher_generators[seed].get_state(),
                "tally": self.tallies[seed].state_dict()}

    def load_state_dict(self, state: dict, seed: int = 0) -> None:
        self.actor_kfacs[seed].load_state_dict(state["actor_kfac"])
        if self.critic_kfacs:
            self.critic_kfacs[seed].load_state_dict(state["critic_kfac"])
        elif self.critic_optimizer:
            self.critic_optimizer.load_state_dict(state["critic_optimizer"], seed)  # (share_encoder: neither)
        if state.get("generator") is not None:  # absent in checkpoints from before the Adam critic's minibatches
            self.generators[seed].set_state(state["generator"])
        if state.get("fisher_generator") is not None:  # absent before the Fisher had its own: it restarts from the seed
            self.fisher_generators[seed].set_state(state["fisher_generator"])
        self.tallies[seed].load_state_dict(state.get("tally"))


REGISTRATION = Registration(
    config=ACKTRConfig, algorithm=ACKTR, title="ACKTR",
    summary="sec. 5.9: K-FAC natural gradient scaled into a KL trust region",
    trust_region_key="max_kl",
    charts={"KL vs bound max_kl": ["acktr/kl", "acktr/max_kl"],
            "step scale eta vs eta_max": ["acktr/step_scale", "acktr/eta_max"],
            "trust region: steps clipped at eta_max and rejected, of all updates (totals)":
                ["acktr/updates", "acktr/steps_clipped", "acktr/steps_rejected"],
            "share_encoder: policy KL, value drift and joint KL vs max_kl":
                ["acktr/kl", "acktr/value_kl", "acktr/joint_kl", "acktr/max_kl"]},
)
