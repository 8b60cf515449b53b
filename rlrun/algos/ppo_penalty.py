"""PPO-Penalty (Alg 5.23; Schulman et al. 2017, sec. 4): KL-penalised surrogate, lambda adapted
once per iteration from the exact mean KL on the whole batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.distributions import kl_divergence

from rlrun.algos.registry import AlgoConfig, Registration
from rlrun.core.batch import Batch
from rlrun.core.contracts import Actor, Critic
from rlrun.core.critic import fit_value_function
from rlrun.core.distributions import index_distribution
from rlrun.core.flat_params import FlatParameters
from rlrun.core.kl_controller import AdaptiveKLController
from rlrun.core.losses import approx_kl, minibatches, normalize, ratio_surrogate, scheduled
from rlrun.core.optimizers import Adam
from rlrun.core.tally import Tally
from rlrun.knobs import ABOVE_ONE, AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, knob, one_of


@dataclass
class PPOPenaltyConfig(AlgoConfig):
    """Defaults: the PPO paper (Schulman et al. 2017), section 4 (adaptive KL penalty) and its MuJoCo
    setup. Per-env tuning: conf/tuned/ppo_penalty/<env>.yaml."""

    name: str = knob("ppo_penalty", "the algorithm")
    learning_rate: float = knob(3e-4, "the actor's Adam step size (PPO paper)", POSITIVE)
    lr_schedule: str = knob("constant", "constant, or linear to 0 at total_steps (SB3's lin_)",
                            one_of("constant", "linear"))
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
    def __init__(self, cfg: PPOPenaltyConfig, actor: Actor, critic: Critic, seed: int):
        self.cfg, self.actor, self.critic = cfg, actor, critic
        self.actor_params = FlatParameters(actor.parameters())
        self.actor_optimizer = Adam(self.actor_params.vector, lr=cfg.learning_rate, eps=cfg.adam_eps)
        self.critic_params = FlatParameters(critic.parameters())  # one vector for Adam
        self.critic_optimizer = Adam(self.critic_params.vector, lr=cfg.critic_lr, eps=cfg.adam_eps)
        self.kl_controller = AdaptiveKLController(kl_coef=cfg.kl_coef_init, kl_target=cfg.kl_target,
                                                  kl_tolerance=cfg.kl_tolerance, kl_adapt_factor=cfg.kl_adapt_factor)
        self.generator = torch.Generator().manual_seed(seed)  # minibatch shuffling
        self.tally = Tally("ppo_penalty", ("lambda_decreases", "lambda_increases"))  # step 5's branches, totals

    def update(self, batch: Batch, progress: float) -> dict[str, float]:
        cfg, obs, actions = self.cfg, batch.obs, batch.actions
        lr = scheduled(cfg.learning_rate, cfg.lr_schedule, progress)
        self.actor_optimizer.lr = lr
        advantages = normalize(batch.advantages) if cfg.normalize_advantage else batch.advantages
        kl_coef = self.kl_controller.kl_coef  # lambda, fixed during this iteration's epochs

        # Alg 5.23 step 2: pi_old <- pi_theta (its distributions on the batch, fixed for the epochs)
        with torch.no_grad():
            pi_old = self.actor(obs)

        # Step 3: M epochs of gradient ascent on J = surrogate - lambda * mean KL(pi_old || pi) (eq. 5.37)
        policy_terms: dict[str, list[torch.Tensor]] = {"loss/policy": [], "loss/kl_penalty": [], "ppo_penalty/approx_kl": []}
        for _ in range(cfg.policy_epochs):
            for idx in minibatches(len(batch), cfg.batch_size, self.generator):
                pi = self.actor(obs[idx])
                log_prob = pi.log_prob(actions[idx])
                surrogate = ratio_surrogate(log_prob, batch.log_probs[idx], advantages[idx])
                kl = kl_divergence(index_distribution(pi_old, idx), pi).mean()
                objective = surrogate - kl_coef * kl + cfg.ent_coef * pi.entropy().mean()
                self.actor_params.zero_grad()
                (-objective).backward()
                self.actor_params.clip_grad_norm_(cfg.max_grad_norm)
                self.actor_optimizer.step()
                policy_terms["loss/policy"].append(-surrogate.detach())
                policy_terms["loss/kl_penalty"].append(kl_coef * kl.detach())
                policy_terms["ppo_penalty/approx_kl"].append(approx_kl(log_prob.detach(), batch.log_probs[idx]))

        # Step 4: B epochs of gradient descent on mean (G_hat - V(s))^2
        critic_loss = fit_value_function(self.critic, self.critic_params, self.critic_optimizer, obs, batch.returns,
                                         epochs=cfg.critic_epochs, batch_size=cfg.batch_size,
                                         generator=self.generator, max_grad_norm=cfg.max_grad_norm)

        # Step 5: d = exact mean KL(pi_old || pi) on the whole batch; adapt lambda once
        with torch.no_grad():
            pi_new = self.actor(obs)
            d = kl_divergence(pi_old, pi_new).mean().item()
        adapt = self.kl_controller.update(d)

        metrics = {key: torch.stack(values).mean().item() for key, values in policy_terms.items()}
        metrics.update({
            "loss/value": critic_loss,
            "train/learning_rate": lr,
            "ppo_penalty/kl_coef": self.kl_controller.kl_coef,
            "ppo_penalty/kl_coef_before": kl_coef,
            "ppo_penalty/kl_target": cfg.kl_target,
            "ppo_penalty/adapt": float(adapt),
            **self.tally.add(lambda_decreases=adapt < 0, lambda_increases=adapt > 0),
        })
        return metrics

    def state_dict(self) -> dict:
        return {"actor_optimizer": self.actor_optimizer.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict(),
                "kl_controller": self.kl_controller.state_dict(), "generator": self.generator.get_state(),
                "tally": self.tally.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.kl_controller.load_state_dict(state["kl_controller"])
        self.generator.set_state(state["generator"])
        self.tally.load_state_dict(state.get("tally"))


REGISTRATION = Registration(
    config=PPOPenaltyConfig, algorithm=PPOPenalty, title="PPO-Penalty",
    summary="Alg 5.23: KL-penalised surrogate, lambda adapted to the KL target",
    trust_region_key="kl_target",
    charts={"KL vs target d_targ": ["ppo_penalty/kl", "ppo_penalty/kl_target"],
            "lambda (KL coefficient)": ["ppo_penalty/kl_coef"],
            "lambda adaptations: decreases and increases of all updates (totals)":
                ["ppo_penalty/updates", "ppo_penalty/lambda_decreases", "ppo_penalty/lambda_increases"]},
)
