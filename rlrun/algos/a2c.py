"""A2C (Mnih et al. 2016, synchronous; the ACKTR paper's baseline): ACKTR's actor-critic with a
first-order optimiser in place of K-FAC, and no trust region.

One gradient step per rollout on  -mean log pi(a|s) A_t + vf_coef * mean (V(s) - G_hat)^2
- ent_coef * H,  actor and critic together, RMSprop, the global gradient norm clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlrun.algos.registry import AlgoConfig, Registration
from rlrun.core import written_gradients
from rlrun.core.batch import Batch
from rlrun.core.contracts import Actor, Critic
from rlrun.core.losses import normalize, scheduled, value_loss
from rlrun.core.optimizers import Adam, RMSprop
from rlrun.core.seeds import actor_critic_parameters, flat_parameters, per_seed, seed_by_seed
from rlrun.core.shared_encoder import shared_features
from rlrun.knobs import AT_LEAST_ONE, FRACTION_CLOSED, NON_NEGATIVE, POSITIVE, SCHEDULES, Check, knob, one_of


@dataclass
class A2CConfig(AlgoConfig):
    """Defaults: OpenAI Baselines a2c / Stable-Baselines3 A2C (rl-zoo's a2c.yml starts from them):
    5-step rollouts, n-step returns, RMSprop 7e-4. Per-env tuning: conf/tuned/a2c/<env>.yaml."""

    name: str = knob("a2c", "the algorithm")
    n_steps: int = knob(5, "rollout length T per env per iteration (Baselines / SB3: 5)", AT_LEAST_ONE)
    gae_lambda: float = knob(1.0, "GAE lambda; 1.0: the n-step returns of Baselines / SB3", FRACTION_CLOSED)
    normalize_advantage: bool = knob(False, "standardise the advantages (Baselines / SB3: no)")
    learning_rate: float = knob(7e-4, "the optimiser's step size (Baselines / SB3)", POSITIVE)
    lr_schedule: str = knob("constant", "constant, or linear to 0 at total_steps (SB3's lin_)", SCHEDULES)
    optimizer: str = knob("rmsprop", "rmsprop (Baselines / SB3) or adam", one_of("rmsprop", "adam"))
    rms_alpha: float = knob(0.99, "RMSprop's squared-gradient average (Baselines / SB3)",
                            Check(lambda v: 0 <= v < 1, "must be in [0, 1)"))
    rms_eps: float = knob(1e-5, "RMSprop's / Adam's epsilon (SB3)", POSITIVE)
    vf_coef: float = knob(0.5, "weight of the value loss (Baselines / SB3)", NON_NEGATIVE)
    ent_coef: float = knob(0.0, "entropy bonus (SB3: 0; Baselines: 0.01)", NON_NEGATIVE)
    max_grad_norm: float = knob(0.5, "global gradient-norm clip (Baselines / SB3)", POSITIVE)
    share_encoder: bool = knob(False, "images: one CNN for the actor and the critic, trained by the joint loss "
                                      "(Baselines' and SB3's Atari network); false: one CNN each")


class A2C:
    """One first-order step per rollout on the actor-critic loss, actor and critic together; of one
    run, or (:meth:`for_seeds`) of S seeds' networks at once, the batch [S, T * N, ...] and every
    metric one per seed."""

    def __init__(self, cfg: A2CConfig, actor: Actor, critic: Critic, seed: int):
        self._build(cfg, [actor], [critic], stacked=False)

    @classmethod
    def for_seeds(cls, cfg: A2CConfig, actors: list[Actor], critics: list[Critic], seeds: list[int]) -> A2C:
        algo = cls.__new__(cls)
        algo._build(cfg, actors, critics, stacked=True)
        return algo

    def _build(self, cfg: A2CConfig, actors: list[Actor], critics: list[Critic], stacked: bool) -> None:
        self.cfg, self.actors, self.critics = cfg, actors, critics
        self.actor, self.critic, self.stacked = actors[0], critics[0], stacked  # stacked: the batch [S, T * N, ...]
        self.params = flat_parameters(actor_critic_parameters(actors, critics), stacked)  # one vector for the optimiser (a row a seed)
        if cfg.optimizer == "rmsprop":
            self.optimizer = RMSprop(self.params.vector, lr=cfg.learning_rate, alpha=cfg.rms_alpha, eps=cfg.rms_eps)
        else:
            self.optimizer = Adam(self.params.vector, lr=cfg.learning_rate, eps=cfg.rms_eps)
        self.written_out = written_gradients.applies(self.actor, self.critic)  # MLPs: the gradient without a graph

    def update(self, batch: Batch, progress: float) -> dict[str, float | list[float]]:
        cfg = self.cfg
        lr = scheduled(cfg.learning_rate, cfg.lr_schedule, progress)
        self.optimizer.lr = lr
        advantages = normalize(batch.advantages) if cfg.normalize_advantage else batch.advantages

        self.params.zero_grad()
        policy_loss, v_loss = self._gradient(batch, advantages)
        grad_norm = self.params.clip_grad_norm_(cfg.max_grad_norm)
        self.optimizer.step()
        return {"loss/policy": per_seed(policy_loss), "loss/value": per_seed(v_loss), "train/learning_rate": lr,
                "a2c/grad_norm": per_seed(grad_norm)}

    def _gradient(self, batch: Batch, advantages: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The gradient of -mean(log pi(a|s) A) + vf_coef * L^V - ent_coef * H into the parameters'
        .grad; returns the two losses. MLP networks: written out (core.written_gradients, tested
        against autograd), every seed in one pass; others (CNNs, other heads): autograd, seed by seed."""
        cfg = self.cfg
        if self.written_out:
            terms = written_gradients.policy_value_gradient(self.actor, self.critic, batch.obs, batch.actions, advantages,
                                                            batch.returns, vf_coef=cfg.vf_coef, ent_coef=cfg.ent_coef,
                                                            stacked=self.params if self.stacked else None)
            return terms.policy_loss, terms.value_loss
        inputs = (batch.obs, batch.actions, advantages, batch.returns)
        if self.stacked:
            return seed_by_seed(self._autograd_gradient, self.actors, self.critics, *inputs)
        return self._autograd_gradient(self.actor, self.critic, *inputs)

    def _autograd_gradient(self, actor: Actor, critic: Critic, obs: torch.Tensor, actions: torch.Tensor,
                           advantages: torch.Tensor, returns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        inputs, encoded = shared_features(actor, critic, obs)  # a shared CNN runs once
        log_prob, entropy = actor.log_prob_entropy(inputs, actions, encoded)
        policy_loss = -(log_prob * advantages).mean()  # the policy gradient of A2C (and of ACKTR's step)
        v_loss = value_loss(critic.value(inputs, encoded), returns)
        (policy_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy.mean()).backward()
        return policy_loss, v_loss

    def state_dict(self, seed: int = 0) -> dict:
        """The state of one run (of stacked seeds, of the ``seed``-th), as an unstacked run saves it."""
        return {"optimizer": self.optimizer.state_dict(seed)}

    def load_state_dict(self, state: dict, seed: int = 0) -> None:
        self.optimizer.load_state_dict(state["optimizer"], seed)


REGISTRATION = Registration(
    config=A2CConfig, algorithm=A2C, title="A2C",
    summary="ACKTR's baseline: the same actor-critic step with RMSprop, no trust region",
    charts={"KL of a step (no bound)": ["a2c/kl"], "gradient norm before clipping": ["a2c/grad_norm"]},
    log_every=100,  # SB3's A2C log_interval: an iteration is only n_steps x num_envs samples
)
