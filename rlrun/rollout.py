"""Rollout collection: run the current policy in the vectorised envs for T steps.

Episode statistics are recorded from the raw env rewards, before any normalisation. Values of
final observations are computed only for truncated episodes, which bootstrap from them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from gymnasium.utils import EzPickle
from gymnasium.vector import SyncVectorEnv, VectorEnv
from torch import nn

from rlrun.core import written_gradients
from rlrun.core.advantages import gae
from rlrun.core.batch import Batch
from rlrun.episodes import Episode
from rlrun.acting import ActionDecoder, NumpyActor, ObservationEncoder, action_buffer, obs_dtype
from rlrun.env_state import env_state, restore_env_state
from rlrun.envs import step_envs
from rlrun.errors import NumericalError
from rlrun.normalization import ObsNormalizer, RewardNormalizer
from rlrun.observations import obs_shape, stack_obs, within_float32
from rlrun.core.shared_encoder import shared_encoder


def _check_finite_obs(raw_obs, step: int, which: str = "") -> None:
    if not within_float32(raw_obs):  # every env step, before the normaliser or a loss sees it
        raise NumericalError(f"non-finite {which}observation from the env at step {step} (NaN, inf, or beyond "
                             f"float32's range, the networks' precision)")


class RolloutCollector:
    """Owns the envs' current observation and the per-env episode accumulators."""

    def __init__(self, envs: VectorEnv, actor: nn.Module, critic: nn.Module, *, n_steps: int, gamma: float,
                 gae_lambda: float, seed: int, device: torch.device,
                 obs_normalizer: ObsNormalizer | None = None, reward_normalizer: RewardNormalizer | None = None,
                 sign_rewards: bool = False, life_loss_terminal: bool = False, sde_sample_freq: int | None = None):
        self.envs, self.actor, self.critic = envs, actor, critic
        self.n_steps, self.gamma, self.gae_lambda, self.device = n_steps, gamma, gae_lambda, device
        self.reward_normalizer = reward_normalizer  # the observation normaliser lives in self.encode
        self.sign_rewards, self.life_loss_terminal = sign_rewards, life_loss_terminal
        # gSDE (a GSDEActor): new exploration matrices at each rollout's start and every this many
        # steps of it (-1: at the start only); None: an actor without them
        self.sde_sample_freq = sde_sample_freq
        self.lives: np.ndarray | None = None  # each env's lives at the last step (life_loss_terminal)
        self.encode = ObservationEncoder(envs.single_observation_space, obs_normalizer, device)
        action_space = envs.single_action_space
        self.to_env = ActionDecoder(action_space)
        n, t = envs.num_envs, n_steps
        action_shape, action_dtype = action_buffer(action_space)
        obs_space = envs.single_observation_space
        # Per-step inputs and outputs stay in numpy until the rollout ends: one conversion, not T.
        self.buf_obs = np.zeros((t, n, *obs_shape(obs_space)), obs_dtype(obs_space))
        self.buf_actions = np.zeros((t, n, *action_shape), action_dtype)
        self.buf_next_values = torch.zeros((t, n), device=device)
        # A CNN shared by actor and critic runs once per step; its features are kept for the batch's
        # log pi_old, V and pi_old, so that the CNN does not run over the whole batch again.
        self.encoder = shared_encoder(actor, critic)
        self.buf_features = None if self.encoder is None else torch.zeros(
            (t, n, self.encoder.features), dtype=next(self.encoder.parameters()).dtype, device=device)
        self.buf_rewards = np.zeros((t, n), np.float32)
        self.buf_terminated = np.zeros((t, n), bool)
        self.buf_done = np.zeros((t, n), bool)
        self.episode_return = np.zeros(n, np.float64)
        self.episode_length = np.zeros(n, np.int64)
        raw_obs, _ = envs.reset(seed=seed)
        self.obs: np.ndarray = self.encode(raw_obs, update=True)  # the networks' input, as numpy

    def collect(self, global_step: int) -> tuple[Batch, list[Episode]]:
        """Alg step 1: T steps in each of the N envs; then GAE (Alg step 2)."""
        episodes = self.run_envs(global_step)
        return self.batch(), episodes

    def run_envs(self, global_step: int) -> list[Episode]:
        """Alg step 1 alone: the T steps (the batch is :meth:`batch`'s, or :func:`seeds_batch`'s);
        the episodes that ended."""
        with torch.inference_mode():
            episodes = self._run_envs(global_step)
        self._check_statistics(global_step + self.n_steps * self.envs.num_envs)
        return episodes

    def batch(self) -> Batch:
        with torch.no_grad():
            return self._batch()

    def _run_envs(self, global_step: int) -> list[Episode]:
        episodes: list[Episode] = []
        n = self.envs.num_envs
        self.buf_next_values.zero_()
        numpy_actor = NumpyActor(self.actor) if NumpyActor.applies(self.actor, self.device) else None
        for t in range(self.n_steps):
            freq = self.sde_sample_freq
            if freq is not None and (t == 0 or freq > 0 and t % freq == 0):
                self.actor.reset_noise(n)
            if numpy_actor is not None:
                action = numpy_actor.act(self.obs)
            elif self.encoder is None:
                action = self.actor.act(self._tensor(self.obs)).cpu().numpy()
            else:
                self.buf_features[t] = self.encoder(self._tensor(self.obs))
                action = self.actor.act(self.buf_features[t], encoded=True).cpu().numpy()
            self.buf_obs[t] = self.obs
            self.buf_actions[t] = action
            raw_obs, reward, terminated, truncated, final_obs, lives = step_envs(self.envs, self.to_env(action))
            done = terminated | truncated
            step = global_step + (t + 1) * n
            if not within_float32(reward):  # stored and learned from as float32
                raise NumericalError(f"non-finite reward {reward.tolist()} from the env at step {step} (NaN, inf, or "
                                     f"beyond float32's range)")
            _check_finite_obs(raw_obs, step)  # before it reaches the normaliser's statistics or a loss
            self.episode_return += reward
            self.episode_length += 1
            if done.any():
                for i in np.flatnonzero(done):
                    episodes.append(Episode(float(self.episode_return[i]), int(self.episode_length[i]), step))
                self.episode_return[done] = 0.0
                self.episode_length[done] = 0
            if self.sign_rewards:  # after the episode's own (unclipped) return was counted
                reward = np.sign(reward)
            if self.reward_normalizer is not None:
                reward = self.reward_normalizer(reward, done)
            self.buf_rewards[t] = reward
            if self.life_loss_terminal:  # a lost life ends the bootstrapping, not the game (Atari)
                lost = self._lost_a_life(lives, done)
                terminated, done = terminated | lost, done | lost
            self.buf_terminated[t] = terminated
            self.buf_done[t] = done
            if truncated.any():  # bootstrap from V(final observation) of truncated episodes only
                ended = np.flatnonzero(truncated)
                final_raw = stack_obs([final_obs[i] for i in ended], self.envs.single_observation_space)
                _check_finite_obs(final_raw, step, "final ")
                self.buf_next_values[t, torch.from_numpy(ended).to(self.device)] = self.critic.value(
                    self.encode.tensor(final_raw))
            self.obs = self.encode(raw_obs, update=True)
        return episodes

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def _check_statistics(self, step: int) -> None:
        """The normalisers' running statistics are finite (an overflowed variance would make every
        normalised observation 0, or every reward 0, without any other sign)."""
        for name, normalizer in (("observation", self.encode.normalizer), ("reward", self.reward_normalizer)):
            if normalizer is not None and not (np.isfinite(normalizer.rms.mean).all()
                                               and np.isfinite(normalizer.rms.var).all()):
                raise NumericalError(f"the {name} normaliser's running mean or variance overflowed by step {step} "
                                     f"(values too large to normalise: turn env.normalize_{'obs' if name == 'observation' else 'reward'} off or scale them)")

    def _lost_a_life(self, lives: np.ndarray | None, done: np.ndarray) -> np.ndarray:
        lives = np.zeros(len(done)) if lives is None else lives
        lost = np.zeros(len(done), bool) if self.lives is None else (lives < self.lives) & ~done
        self.lives = lives
        return lost

    def _batch(self) -> Batch:
        """log pi_old(a_t|s_t) and V(s_t) for the whole rollout in one batched call each (the policy has
        not changed since the actions were sampled, and stepping the envs needs neither), then GAE;
        flattened to [T * N] (normal tensors, usable by autograd). With a shared encoder, from the
        features kept at each step, and pi_old(.|s_t) too (``Batch.pi_old``)."""
        rewards, terminated, done = (self._tensor(buf) for buf in (self.buf_rewards, self.buf_terminated, self.buf_done))
        t, n = self.n_steps, self.envs.num_envs
        encoded = self.encoder is not None
        # [T * N, ...], copied out of the buffers (which the next rollout overwrites)
        obs = torch.tensor(self.buf_obs.reshape(t * n, *self.buf_obs.shape[2:]), device=self.device)
        actions = torch.tensor(self.buf_actions.reshape(t * n, *self.buf_actions.shape[2:]), device=self.device)
        inputs = self.buf_features.flatten(0, 1) if encoded else obs  # a CNN's batch
        log_probs = self.actor.log_prob_entropy(inputs, actions, encoded)[0].view(t, n)
        values = self.critic.value(inputs, encoded).view(t, n)
        pi_old = self.actor.head(inputs) if encoded else None
        # next_values[t] = V(s_{t+1}) where the episode continued; V(final obs) of truncations was stored.
        following = torch.cat([values[1:], self.critic.value(self._tensor(self.obs))[None]])
        next_values = torch.where(done, self.buf_next_values, following)
        advantages = gae(rewards, values, next_values, terminated, done, self.gamma, self.gae_lambda)
        return Batch(
            obs=obs,
            actions=actions,
            log_probs=log_probs.flatten(0, 1),
            values=values.flatten(0, 1),
            advantages=advantages.flatten(0, 1),
            returns=(advantages + values).flatten(0, 1),
            pi_old=pi_old,
        )

    def state_dict(self) -> dict:
        """The current observation, the episode accumulators and, for sync envs, the envs' state.

        Sub-environments of a SyncVectorEnv are saved as data (:mod:`rlrun.env_state`: their
        physics arrays, RNG and TimeLimit counter), so a resumed run continues the very same
        episodes. Async envs live in other processes and cannot be captured, and the state of
        envs that pickle through gymnasium's ``EzPickle`` (Box2D, MuJoCo) lives in their
        simulators, not in data attributes: both are reset on resume (not bit-exact, documented).
        """
        envs = [env_state(env) for env in self.envs.envs] if self._envs_have_data_state() else None
        return {"obs": torch.from_numpy(self.obs.copy()), "episode_return": self.episode_return.copy(),
                "episode_length": self.episode_length.copy(), "envs": envs}

    def _envs_have_data_state(self) -> bool:
        return isinstance(self.envs, SyncVectorEnv) and not any(isinstance(env.unwrapped, EzPickle)
                                                                for env in self.envs.envs)

    def load_state_dict(self, state: dict, seed: int) -> None:
        envs = state["envs"]
        if (envs is not None and self._envs_have_data_state() and len(envs) == len(self.envs.envs)
                and all(restore_env_state(env, saved) for env, saved in zip(self.envs.envs, envs))):
            self.obs = state["obs"].cpu().numpy()
            self.episode_return, self.episode_length = state["episode_return"].copy(), state["episode_length"].copy()
        else:  # fresh episodes from a seed that differs from the first session's
            self.obs = self.encode(self.envs.reset(seed=seed)[0])
            self.episode_return[:], self.episode_length[:] = 0.0, 0


def seeds_batch(collectors: Sequence[RolloutCollector]) -> Batch:
    """The batches of several seeds' rollouts (one collector each, alike but for their seeds, their
    actors and critics MLPs with a written-out head: ``written_gradients.applies``) stacked [S, T * N,
    ...], as :meth:`RolloutCollector.batch` makes each: log pi_old and V of every seed from one pass
    of their stacked networks (pi_old too, ``Batch.pi_old``), and GAE over all seeds' envs at once."""
    first = collectors[0]
    s, t, n, device = len(collectors), first.n_steps, first.envs.num_envs, first.device

    def stacked(arrays: list[np.ndarray], shape: tuple[int, ...]) -> torch.Tensor:  # copied out of the buffers
        return torch.from_numpy(np.stack([array.reshape(shape) for array in arrays])).to(device)

    def by_step(arrays: list[np.ndarray | torch.Tensor]) -> torch.Tensor:  # each seed's [T, N] -> [T, S * N]
        together = torch.stack(arrays, 1) if isinstance(arrays[0], torch.Tensor) else torch.from_numpy(np.stack(arrays, 1))
        return together.reshape(t, s * n).to(device)

    with torch.no_grad():
        obs = stacked([c.buf_obs for c in collectors], (t * n, *first.buf_obs.shape[2:]))
        actions = stacked([c.buf_actions for c in collectors], (t * n, *first.buf_actions.shape[2:]))
        pi_old, log_probs = written_gradients.seeds_policy_log_prob([c.actor for c in collectors], obs, actions)
        # V(s_t) of every step, and of s_T (each env's observation after the last step)
        values = written_gradients.seeds_values([c.critic for c in collectors], torch.cat(
            [obs, stacked([c.obs for c in collectors], first.obs.shape)], 1))
        values, last_values = values[:, :t * n].contiguous(), values[:, t * n:]
        rewards, terminated, done = (by_step([getattr(c, name) for c in collectors])
                                     for name in ("buf_rewards", "buf_terminated", "buf_done"))
        step_values = values.reshape(s, t, n).transpose(0, 1).reshape(t, s * n)
        # next_values[t] = V(s_{t+1}) where the episode continued; V(final obs) of truncations was stored.
        following = torch.cat([step_values[1:], last_values.reshape(1, s * n)])
        next_values = torch.where(done, by_step([c.buf_next_values for c in collectors]), following)
        advantages = gae(rewards, step_values, next_values, terminated, done, first.gamma, first.gae_lambda)
        advantages = advantages.reshape(t, s, n).transpose(0, 1).reshape(s, t * n)
    return Batch(obs=obs, actions=actions, log_probs=log_probs, values=values, advantages=advantages,
                 returns=advantages + values, pi_old=pi_old)
