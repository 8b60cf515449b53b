"""TRPO (Alg 5.22; Schulman et al. 2015): natural gradient by conjugate gradient, then a
backtracking line search under the KL bound; the critic is fitted afterwards by its own optimiser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.distributions import kl_divergence

from rlrun.algos.registry import AlgoConfig, Registration
from rlrun.core import written_fisher, written_gradients
from rlrun.core.batch import Batch
from rlrun.core.contracts import Actor, Critic
from rlrun.core.critic import fit_value_function
from rlrun.core.losses import normalize, ratio_surrogate, scheduled
from rlrun.core.flat_params import FlatParameters
from rlrun.core.natural_gradient import (LineSearchResult, StepScale, backtracking_line_search,
                                         backtracking_line_search_seeds, conjugate_gradient, conjugate_gradient_seeds,
                                         flat_grad, make_fisher_vector_product, trust_region_scale)
from rlrun.core.optimizers import Adam
from rlrun.core.seeds import flat_parameters, merge_seeds, per_seed, seed_rows
from rlrun.core.tally import Tally
from rlrun.knobs import AT_LEAST_ONE, FRACTION_OPEN, POSITIVE, SCHEDULES, Check, knob


# The most samples (seeds x batch) whose Fisher products a CPU computes in one batched pass; at
# more it is faster seed by seed (benchmarks/results/speed/fisher_products.json).
STACKED_FISHER_SAMPLES = 8192


@dataclass
class TRPOConfig(AlgoConfig):
    """Defaults: Schulman et al. 2015 and sb3-contrib's TRPO. Per-env tuning (rl-zoo trpo.yml):
    conf/tuned/trpo/<env>.yaml."""

    name: str = knob("trpo", "the algorithm")
    max_kl: float = knob(0.01, "delta, the bound on the mean KL of a step (TRPO paper, sb3-contrib)", POSITIVE)
    max_kl_schedule: str = knob("constant", "constant, or delta linear to 0 at total_steps (as PPO's clip_schedule)",
                                SCHEDULES)
    cg_iters: int = knob(10, "conjugate-gradient iterations for H^-1 g (TRPO paper's 10)", AT_LEAST_ONE)
    cg_damping: float = knob(0.1, "damping added to the KL Hessian in CG (Baselines, sb3-contrib)", POSITIVE)
    cg_tol: float = knob(1e-10, "CG stops once the residual's squared norm is below this (Baselines)", POSITIVE)
    backtrack_coef: float = knob(0.8, "alpha, the line search's shrink factor (sb3-contrib)", FRACTION_OPEN)
    backtrack_iters: int = knob(10, "K, the line search's largest number of shrinks (sb3-contrib)",
                                Check(lambda v: v >= 0, "must be >= 0"))
    critic_lr: float = knob(1e-3, "the critic's Adam step size (sb3-contrib)", POSITIVE)
    critic_epochs: int = knob(10, "epochs of critic minibatch Adam per batch (sb3-contrib n_critic_updates)", AT_LEAST_ONE)
    batch_size: int = knob(128, "the critic's minibatch size (sb3-contrib)", AT_LEAST_ONE)
    adam_eps: float = knob(1e-5, "the critic's Adam epsilon", POSITIVE)


class TRPO:
    """Alg 5.22 for one run, or (:meth:`for_seeds`) for S seeds of one configuration at once: the
    batch [S, T * N, ...], each seed its own natural gradient, trust region and line search (steps
    3-5: for MLP actors computed for all seeds together, the conjugate gradient and the line search
    batched over the seeds; for others seed by seed), the seeds' critics fitted together (step 6),
    every metric one per seed."""

    def __init__(self, cfg: TRPOConfig, actor: Actor, critic: Critic, seed: int):
        self._build(cfg, [actor], [critic], [seed], stacked=False)

    @classmethod
    def for_seeds(cls, cfg: TRPOConfig, actors: list[Actor], critics: list[Critic], seeds: list[int]) -> TRPO:
        algo = cls.__new__(cls)
        algo._build(cfg, actors, critics, seeds, stacked=True)
        return algo

    def _build(self, cfg: TRPOConfig, actors: list[Actor], critics: list[Critic], seeds: list[int], stacked: bool) -> None:
        self.cfg, self.actors, self.critics, self.stacked = cfg, actors, critics, stacked
        self.actor, self.critic = actors[0], critics[0]
        self.critic_params = flat_parameters([list(critic.parameters()) for critic in critics], stacked)  # one vector for Adam
        self.critic_optimizer = Adam(self.critic_params.vector, lr=cfg.critic_lr, eps=cfg.adam_eps)
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]  # critic minibatch shuffling
        self.tallies = [Tally("trpo", ("steps_rejected",)) for _ in seeds]  # step 5 kept theta_k, totals
        self.written_fisher = written_gradients.applies(self.actor, None)  # MLP policies: F v without a graph
        # S seeds' MLP actors as the rows of one matrix: steps 3-5 batched over the seeds
        self.actor_params = (FlatParameters.stacked([list(actor.parameters()) for actor in actors])
                             if stacked and self.written_fisher else None)

    def update(self, batch: Batch, progress: float) -> dict[str, float | list[float]]:
        cfg = self.cfg
        # Alg 5.22 step 2: advantages A_hat from V_phi_k (computed by the rollout)
        advantages = normalize(batch.advantages) if cfg.normalize_advantage else batch.advantages
        # Steps 3-5, each seed in its own trust region
        seeds = len(self.actors)
        max_kl = scheduled(cfg.max_kl, cfg.max_kl_schedule, progress)
        inputs = (batch.obs, batch.actions, batch.log_probs, advantages)
        if self.actor_params is not None:
            steps = self._policy_steps_together(max_kl, *inputs)
        else:
            steps = [self._policy_step(s, max_kl, *seed_inputs)
                     for s, seed_inputs in enumerate(zip(*(seed_rows(x, seeds, self.stacked) for x in inputs)))]

        # Step 6: fit V by gradient descent on mean (V(s) - G_hat)^2 (eq. 5.34), critic parameters only
        critic_loss = fit_value_function(self.critics if self.stacked else self.critic, self.critic_params,
                                         self.critic_optimizer, batch.obs, batch.returns, epochs=cfg.critic_epochs,
                                         batch_size=cfg.batch_size,
                                         generator=self.generators if self.stacked else self.generators[0])
        return {**merge_seeds(steps), "loss/value": per_seed(critic_loss)}

    def _policy_step(self, s: int, max_kl: float, obs: torch.Tensor, actions: torch.Tensor,
                     old_log_probs: torch.Tensor, advantages: torch.Tensor) -> dict[str, float]:
        """Steps 3-5 for seed s: the natural gradient, its trust-region scale, the line search under
        the KL bound ``max_kl`` (delta at this point of the schedule)."""
        cfg, actor = self.cfg, self.actors[s]
        actor_params = list(actor.parameters())  # the trust region touches only these
        with torch.no_grad():
            pi_old = actor(obs)

        # Step 3: g = grad of the surrogate mean_t[ pi(a|s)/pi_old(a|s) * A_t ] at theta_k (eq. 5.31)
        pi = actor(obs)
        surrogate = ratio_surrogate(pi.log_prob(actions), old_log_probs, advantages)
        g = flat_grad(surrogate, actor_params, retain_graph=not self.written_fisher)

        # Step 4: x ~= H^-1 g by conjugate gradient, H = Hessian of the sample-mean KL (eq. 5.32):
        # MLP policies by the Fisher product written out (core.written_fisher), others by autograd
        if self.written_fisher:
            fvp = written_fisher.fisher_vector_product(actor, obs, cfg.cg_damping)
        else:
            fvp = make_fisher_vector_product(kl_divergence(pi_old, pi).mean(), actor_params, cfg.cg_damping)
        cg = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_tol)

        # Step 5: theta = theta_k + alpha^j sqrt(2 delta / x^T H x) x, smallest passing j (eq. 5.33)
        step = trust_region_scale(float(cg.x @ fvp(cg.x)), max_kl)

        def evaluate() -> tuple[float, float]:
            with torch.no_grad():
                pi_new = actor(obs)
                surr = ratio_surrogate(pi_new.log_prob(actions), old_log_probs, advantages)
                return surr.item(), kl_divergence(pi_old, pi_new).mean().item()

        if step.valid:
            search = backtracking_line_search(actor_params, step.scale * cg.x, evaluate, max_kl,
                                              cfg.backtrack_coef, cfg.backtrack_iters)
        else:
            search = None  # x^T H x not positive: no step this iteration, reported below

        return self._step_metrics(s, max_kl, surrogate.item(), cg.iterations, cg.residual, cg.x.norm().item(), step,
                                  search)

    def _policy_steps_together(self, max_kl: float, obs: torch.Tensor, actions: torch.Tensor,
                               old_log_probs: torch.Tensor, advantages: torch.Tensor) -> list[dict[str, float]]:
        """Steps 3-5 of every seed at once, MLP actors (the rows of ``self.actor_params``), each
        seed in its own trust region as :meth:`_policy_step` takes it: the gradients written out for
        all seeds in one pass, the Fisher products as :meth:`_fisher_products` takes them, conjugate
        gradient over the seeds' rows (each stopping on its own residual), each line-search round
        trying the next candidate of every seed still searching in one evaluation."""
        cfg, actor, params = self.cfg, self.actor, self.actor_params
        pi_old = written_gradients.policy_of(actor, obs, params)

        # Step 3: g of each seed, a row (written out, as autograd would give it)
        surrogates = written_gradients.ratio_surrogate_gradient(actor, obs, actions, old_log_probs, advantages, params)
        g = params.vector.grad.clone()

        # Step 4: x ~= H^-1 g by conjugate gradient, the seeds' systems together (each stops on its own residual)
        fvp = self._fisher_products(obs)
        cg = conjugate_gradient_seeds(fvp, g, cfg.cg_iters, cfg.cg_tol)

        # Step 5: each seed's trust-region scale, then the line searches in rounds
        steps = [trust_region_scale(xHx, max_kl) for xHx in (cg.x * fvp(cg.x)).sum(-1).tolist()]
        full_steps = cg.x.new_tensor([step.scale for step in steps]).unsqueeze(-1) * cg.x

        def evaluate() -> tuple[list[float], list[float]]:
            pi_new = written_gradients.policy_of(actor, obs, params)
            surr = ratio_surrogate(pi_new.log_prob(actions), old_log_probs, advantages)
            return surr.tolist(), kl_divergence(pi_old, pi_new).mean(-1).tolist()

        searches = backtracking_line_search_seeds(params.vector, full_steps, [step.valid for step in steps], evaluate,
                                                  max_kl, cfg.backtrack_coef, cfg.backtrack_iters)
        return [self._step_metrics(s, max_kl, surrogate, iterations, residual, x_norm, step, search)
                for s, (surrogate, iterations, residual, x_norm, step, search) in enumerate(zip(
                    surrogates.tolist(), cg.iterations, cg.residuals, cg.x.norm(dim=-1).tolist(), steps, searches))]

    def _fisher_products(self, obs: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """v [S, P] -> each seed's (F_s + damping I) v_s (core.written_fisher). One batched pass for
        all seeds while their samples number at most ``STACKED_FISHER_SAMPLES``, or off the CPU;
        beyond, on a CPU, seed by seed: the batched pass's [S, B, hidden] activations then leave
        the core's cache and it is the slower (``python benchmarks/fisher_products.py``)."""
        damping = self.cfg.cg_damping
        if obs.device.type != "cpu" or obs.shape[0] * obs.shape[1] <= STACKED_FISHER_SAMPLES:
            return written_fisher.fisher_vector_product(self.actor, obs, damping, stacked=self.actor_params)
        products = [written_fisher.fisher_vector_product(actor, rows, damping) for actor, rows in zip(self.actors, obs)]
        return lambda v: torch.stack([product(row) for product, row in zip(products, v)])

    def _step_metrics(self, s: int, max_kl: float, surrogate: float, cg_iters: int, cg_residual: float, x_norm: float,
                      step: StepScale, search: LineSearchResult | None) -> dict[str, float]:
        """Seed s's diagnostics of steps 3-5; ``search`` None: no valid step to search along."""
        return {
            # -L(theta_new): the surrogate after the accepted step (at theta_old it is mean(A) ~ 0)
            "loss/policy": -(surrogate + (search.improvement if search is not None else 0.0)),
            "trpo/max_kl": max_kl,
            "trpo/cg_iters": float(cg_iters),
            "trpo/cg_residual": cg_residual,
            "trpo/xHx": step.xHx,
            "trpo/xHx_invalid": float(not step.valid),
            "trpo/step_accepted": float(search is not None and search.accepted),
            "trpo/backtracks": float(search.backtracks if search is not None else self.cfg.backtrack_iters + 1),
            "trpo/surrogate_improvement": search.improvement if search is not None else 0.0,
            "trpo/step_norm": step.scale * x_norm * (search.step_fraction if search is not None else 0.0),
            **self.tallies[s].add(steps_rejected=search is None or not search.accepted),
        }

    def state_dict(self, seed: int = 0) -> dict:
        """The state of one run (of stacked seeds, of the ``seed``-th), as an unstacked run saves it."""
        return {"critic_optimizer": self.critic_optimizer.state_dict(seed), "generator": self.generators[seed].get_state(),
                "tally": self.tallies[seed].state_dict()}

    def load_state_dict(self, state: dict, seed: int = 0) -> None:
        self.critic_optimizer.load_state_dict(state["critic_optimizer"], seed)
        self.generators[seed].set_state(state["generator"])
        self.tallies[seed].load_state_dict(state.get("tally"))


REGISTRATION = Registration(
    config=TRPOConfig, algorithm=TRPO, title="TRPO",
    summary="Alg 5.22: conjugate gradient on the KL Hessian, line search under the KL bound",
    trust_region_key="max_kl",
    charts={"KL vs bound max_kl": ["trpo/kl", "trpo/max_kl"],
            "line search: backtracks": ["trpo/backtracks"],
            "line search: steps rejected of all updates (totals)": ["trpo/updates", "trpo/steps_rejected"]},
)
