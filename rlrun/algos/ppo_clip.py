"""PPO-Clip (Alg 5.24; Schulman et al. 2017): the clipped surrogate maximised with Adam."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from rlrun.algos.registry import AlgoConfig, Registration
from rlrun.core import written_gradients
from rlrun.core.batch import Batch
from rlrun.core.contracts import Actor, Critic
from rlrun.core.losses import (approx_kl, clipped_surrogate, normalize, scheduled, seed_minibatches, shuffled_minibatches,
                               value_loss)
from rlrun.core.seeds import actor_critic_parameters, flat_parameters, per_seed, seed_by_seed
from rlrun.core.optimizers import Adam
from rlrun.core.shared_encoder import shared_features
from rlrun.knobs import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, SCHEDULES, knob



@dataclass
class PPOClipConfig(AlgoConfig):
    """Defaults: the PPO paper's MuJoCo table (Schulman et al. 2017): Adam 3e-4, 10 epochs, minibatch
    64, gamma 0.99, GAE 0.95, clip 0.2, and its 2,048 samples an update (T=2048 with one env there;
    8 envs x 256 here). Per-env tuning: conf/tuned/ppo_clip/<env>.yaml."""

    name: str = knob("ppo_clip", "the algorithm")
    learning_rate: float = knob(3e-4, "Adam step size (PPO paper)", POSITIVE)
    lr_schedule: str = knob("constant", "constant, or linear to 0 at total_steps (SB3's lin_)", SCHEDULES)
    n_epochs: int = knob(10, "M, epochs over each batch (PPO paper)", AT_LEAST_ONE)
    batch_size: int = knob(64, "minibatch size (PPO paper)", AT_LEAST_ONE)
    clip_eps: float = knob(0.2, "epsilon of the clipped ratio (PPO paper)", POSITIVE)
    clip_schedule: str = knob("constant", "constant, or linear to 0 at total_steps (SB3's lin_)", SCHEDULES)
    clip_value_eps: Optional[float] = knob(None, "clip the value around its old estimate (Baselines ppo2); None: no clipping",
                                           POSITIVE)
    vf_coef: float = knob(0.5, "c1, weight of the value loss (PPO paper / SB3)", NON_NEGATIVE)
    ent_coef: float = knob(0.0, "c2, entropy bonus (PPO paper's MuJoCo runs: 0)", NON_NEGATIVE)
    max_grad_norm: float = knob(0.5, "global gradient-norm clip (Baselines ppo2 / SB3)", POSITIVE)
    target_kl: Optional[float] = knob(None, "stop the epochs once approx KL exceeds 1.5x this (SB3); None: never",
                                      POSITIVE)
    adam_eps: float = knob(1e-5, "Adam epsilon (Baselines ppo2 / SB3)", POSITIVE)
    share_encoder: bool = knob(False, "images: one CNN for the actor and the critic, trained by the joint loss "
                                      "(the PPO paper's Atari network, SB3's CnnPolicy); false: one CNN each")


class PPOClip:
    """Actor and critic trained jointly on L^CLIP - vf_coef * L^V + ent_coef * H for M epochs.

    One run's networks, or (:meth:`for_seeds`) several seeds' of one configuration stepped together:
    the batch then has a leading seed axis [S, T * N, ...], each seed shuffles with its own
    generator and stops its epochs on its own KL, and every metric is one value per seed."""

    def __init__(self, cfg: PPOClipConfig, actor: Actor, critic: Critic, seed: int):
        self._build(cfg, [actor], [critic], [seed], stacked=False)

    @classmethod
    def for_seeds(cls, cfg: PPOClipConfig, actors: list[Actor], critics: list[Critic], seeds: list[int]) -> PPOClip:
        algo = cls.__new__(cls)
        algo._build(cfg, actors, critics, seeds, stacked=True)
        return algo

    def _build(self, cfg: PPOClipConfig, actors: list[Actor], critics: list[Critic], seeds: list[int],
               stacked: bool) -> None:
        self.cfg, self.actors, self.critics = cfg, actors, critics
        self.actor, self.critic = actors[0], critics[0]
        self.stacked = stacked  # the batch [S, T * N, ...], the metrics one per seed
        self.params = flat_parameters(actor_critic_parameters(actors, critics), stacked)  # one vector for Adam (a row a seed)
        self.optimizer = Adam(self.params.vector, lr=cfg.learning_rate, eps=cfg.adam_eps)
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]  # minibatch shuffling
        self.written_out = written_gradients.applies(self.actor, self.critic)  # MLPs: the gradient without a graph

    def update(self, batch: Batch, progress: float) -> dict[str, float | list[float]]:
        cfg = self.cfg
        lr = scheduled(cfg.learning_rate, cfg.lr_schedule, progress)
        clip_eps = scheduled(cfg.clip_eps, cfg.clip_schedule, progress)
        self.optimizer.lr = lr
        advantages = normalize(batch.advantages) if cfg.normalize_advantage else batch.advantages

        losses: dict[str, list[torch.Tensor]] = {"loss/policy": [], "loss/value": []}
        # log pi(a|s) of each minibatch before its step, and log pi_old(a|s): the approx KL and the
        # clip fraction are over every sample of the update, computed once after the epochs
        log_probs: list[torch.Tensor] = []
        old_log_probs: list[torch.Tensor] = []
        data = [batch.obs, batch.actions, batch.log_probs, advantages, batch.returns, batch.values]
        stepping = torch.ones(len(self.generators), dtype=torch.bool)  # the seeds whose epochs go on
        steps_taken: list[torch.Tensor] = []  # the mask of each minibatch: a stopped seed's later ones do not count
        epochs_done = torch.zeros(len(self.generators))
        for _ in range(cfg.n_epochs):  # M epochs of minibatch Adam on the clipped surrogate (5.40-5.41)
            epochs_done += stepping.float()
            minibatches = (seed_minibatches(data, cfg.batch_size, self.generators, stepping) if self.stacked
                           else shuffled_minibatches(data, cfg.batch_size, self.generators[0]))
            for obs, actions, old_log_prob, adv, returns, old_values in minibatches:
                self.params.zero_grad()
                policy_loss, v_loss, log_prob = self._gradient(obs, actions, old_log_prob, adv, returns, old_values,
                                                               clip_eps)
                self.params.clip_grad_norm_(cfg.max_grad_norm)
                self.optimizer.step(stepping if self.stacked else None)
                log_prob = log_prob.detach()
                steps_taken.append(stepping.clone())
                losses["loss/policy"].append(policy_loss.detach())
                losses["loss/value"].append(v_loss.detach())
                log_probs.append(log_prob)
                old_log_probs.append(old_log_prob)
                if cfg.target_kl is not None:  # early stop, as SB3: approx KL past 1.5 x target
                    stepping &= ~(approx_kl(log_prob, old_log_prob) > 1.5 * cfg.target_kl).cpu()
                    if not stepping.any():
                        break
            if not stepping.any():
                break

        taken = torch.stack(steps_taken).float()  # [minibatches, S]: each seed's own minibatches count
        metrics = {key: per_seed((torch.stack(values).cpu().reshape(taken.shape) * taken).sum(0) / taken.sum(0))
                   for key, values in losses.items()}
        # every sample of every epoch the seed took
        log_prob, old_log_prob = self._taken(log_probs, steps_taken), self._taken(old_log_probs, steps_taken)
        metrics["ppo_clip/approx_kl"] = per_seed([approx_kl(new, old) for new, old in zip(log_prob, old_log_prob)])
        metrics["ppo_clip/clip_fraction"] = per_seed([(((new - old).exp() - 1.0).abs() > clip_eps).float().mean()
                                                      for new, old in zip(log_prob, old_log_prob)])
        metrics.update({
            "train/learning_rate": lr,
            "ppo_clip/clip_eps": clip_eps,
            "train/epochs": per_seed(epochs_done),
        })
        return metrics

    def _taken(self, values: list[torch.Tensor], steps_taken: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each seed's samples from the minibatches it stepped on, concatenated ([S, M * B] -> S tensors)."""
        if not self.stacked:
            return [torch.cat(values)]
        return [torch.cat([value[s] for value, taken in zip(values, steps_taken) if taken[s]])
                for s in range(len(self.generators))]

    def _gradient(self, obs: torch.Tensor, actions: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                  returns: torch.Tensor, old_values: torch.Tensor,
                  clip_eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gradient of -L^CLIP + vf_coef * L^V - ent_coef * H into the parameters' .grad;
        returns (-L^CLIP, L^V, log pi(a|s)). MLP networks: written out (core.written_gradients,
        tested against autograd), every seed in one pass; others (CNNs, other heads): autograd,
        seed by seed."""
        cfg = self.cfg
        if self.written_out:
            terms = written_gradients.policy_value_gradient(
                self.actor, self.critic, obs, actions, advantages, returns, vf_coef=cfg.vf_coef, ent_coef=cfg.ent_coef,
                old_log_prob=old_log_prob, clip_eps=clip_eps, old_values=old_values, clip_value_eps=cfg.clip_value_eps,
                stacked=self.params if self.stacked else None)
            return terms.policy_loss, terms.value_loss, terms.log_prob
        inputs = (obs, actions, old_log_prob, advantages, returns, old_values)
        autograd = lambda actor, critic, *tensors: self._autograd_gradient(actor, critic, *tensors, clip_eps)  # noqa: E731
        if self.stacked:
            return seed_by_seed(autograd, self.actors, self.critics, *inputs)
        return autograd(self.actor, self.critic, *inputs)

    def _autograd_gradient(self, actor: Actor, critic: Critic, obs: torch.Tensor, actions: torch.Tensor,
                           old_log_prob: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
                           old_values: torch.Tensor, clip_eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        inputs, encoded = shared_features(actor, critic, obs)  # a shared CNN runs once
        log_prob, entropy = actor.log_prob_entropy(inputs, actions, encoded)
        policy_loss = -clipped_surrogate(log_prob, old_log_prob, advantages, clip_eps)
        v_loss = value_loss(critic.value(inputs, encoded), returns, old_values, cfg.clip_value_eps)
        loss = policy_loss + cfg.vf_coef * v_loss
        if cfg.ent_coef:  # (a zero bonus adds nothing to the gradient, only its backward's cost)
            loss = loss - cfg.ent_coef * entropy.mean()
        loss.backward()
        return policy_loss, v_loss, log_prob

    def state_dict(self, seed: int = 0) -> dict:
        """The state of one run (of stacked seeds, of the ``seed``-th), as an unstacked run saves it."""
        return {"optimizer": self.optimizer.state_dict(seed), "generator": self.generators[seed].get_state()}

    def load_state_dict(self, state: dict, seed: int = 0) -> None:
        self.optimizer.load_state_dict(state["optimizer"], seed)
        self.generators[seed].set_state(state["generator"])


REGISTRATION = Registration(
    config=PPOClipConfig, algorithm=PPOClip, title="PPO-Clip", summary="Alg 5.24: clipped surrogate, Adam",
    trust_region_key="clip_eps",
    charts={"KL and approx KL": ["ppo_clip/kl", "ppo_clip/approx_kl"],
            "fraction of ratios clipped, beside the clip range eps": ["ppo_clip/clip_fraction", "ppo_clip/clip_eps"]},
)
