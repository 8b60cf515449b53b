"""Typed hyperparameters of the four algorithms (the schema behind ``conf/algo/<name>.yaml``).

They live apart from the algorithm files so that composing a config never imports torch. The
names are the words used in ``ALGORITHMS.md``, on the command line and in TensorBoard tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class AlgoConfig:
    """What every algorithm shares: rollout length, advantage estimation, networks."""

    name: str = "???"
    n_steps: int = 2048  # rollout length T per env per iteration
    gamma: float = 0.99
    gae_lambda: float = 0.95  # 1.0 gives Monte-Carlo returns
    normalize_advantage: bool = True
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"  # tanh | relu
    log_std_init: float = 0.0  # Box action spaces: initial state-independent log std
    ortho_init: bool = True


@dataclass
class PPOClipConfig(AlgoConfig):
    """Alg 5.24; PPO paper (Schulman et al. 2017) defaults."""

    name: str = "ppo_clip"
    learning_rate: float = 3e-4
    lr_schedule: str = "constant"  # constant | linear (to 0 at total_steps)
    n_epochs: int = 10  # M
    batch_size: int = 64  # minibatch size
    clip_eps: float = 0.2
    clip_schedule: str = "constant"  # constant | linear
    clip_value_eps: Optional[float] = None  # None: no value clipping
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    target_kl: Optional[float] = None  # stop the epochs early once approx KL exceeds it
    adam_eps: float = 1e-5


@dataclass
class TRPOConfig(AlgoConfig):
    """Alg 5.22; Schulman et al. 2015 and sb3-contrib defaults."""

    name: str = "trpo"
    max_kl: float = 0.01  # delta
    cg_iters: int = 10
    cg_damping: float = 0.1
    cg_tol: float = 1e-10
    backtrack_coef: float = 0.8  # alpha
    backtrack_iters: int = 10  # K
    critic_lr: float = 1e-3
    critic_epochs: int = 10
    batch_size: int = 128  # critic minibatch size
    adam_eps: float = 1e-5


@dataclass
class PPOPenaltyConfig(AlgoConfig):
    """Alg 5.23 (adaptive KL); PPO paper section 4 defaults."""

    name: str = "ppo_penalty"
    learning_rate: float = 3e-4
    lr_schedule: str = "constant"
    policy_epochs: int = 10  # M
    critic_epochs: int = 10  # B
    batch_size: int = 64
    critic_lr: float = 3e-4
    kl_target: float = 0.01  # d_targ
    kl_coef_init: float = 1.0  # lambda_0
    kl_tolerance: float = 1.5  # a
    kl_adapt_factor: float = 2.0  # b
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    adam_eps: float = 1e-5


@dataclass
class ACKTRConfig(AlgoConfig):
    """Section 5.9; Wu et al. 2017 / OpenAI Baselines defaults."""

    name: str = "acktr"
    n_steps: int = 20
    gae_lambda: float = 1.0
    normalize_advantage: bool = False
    learning_rate: float = 0.25  # eta_max, the largest step scale (the initial one when kl_target is set)
    max_kl: float = 0.001  # delta of the trust region; the measured KL after a step never exceeds it
    kl_target: Optional[float] = None  # adapt eta_max from the measured KL (Baselines acktr_cont: 0.002); None: fixed
    kl_tolerance: float = 2.0  # eta_max /= kl_adapt_factor when KL > kl_target * this, *= when KL < kl_target / this
    kl_adapt_factor: float = 1.5
    momentum: float = 0.0  # K-FAC direction averaged over iterations, v <- m v + (1 - m) Delta (acktr_cont: 0.9)
    backtrack_coef: float = 0.9  # a step whose measured KL exceeds max_kl is shrunk by this factor ...
    backtrack_iters: int = 10  # ... up to this many times, else rejected (theta_old kept)
    # Gaussian heads: the log-std's own share of max_kl, with its own step scale (the rest goes to
    # the K-FAC mean network); None: one scale for the whole step, as in the paper
    log_std_kl_share: Optional[float] = None
    damping: float = 0.01
    stat_decay: float = 0.99
    inv_every: int = 10
    trust_region_fisher: str = "exact"  # exact (Fisher-vector product along Delta) | kfac (K-FAC's estimate)
    ent_coef: float = 0.01
    critic_optimizer: str = "kfac"  # kfac | adam
    critic_lr: float = 1e-3  # only for critic_optimizer=adam
    critic_max_kl: float = 0.001  # the K-FAC critic's trust region (Gauss-Newton KL of a unit-variance output)
    critic_eta_max: float = 0.25  # the K-FAC critic's largest step scale (1 is a full Gauss-Newton step)
    critic_epochs: int = 1  # critic steps per iteration on the whole batch (acktr_cont: 25)


ALGO_SCHEMAS: dict[str, type[AlgoConfig]] = {
    "ppo_clip": PPOClipConfig,
    "trpo": TRPOConfig,
    "ppo_penalty": PPOPenaltyConfig,
    "acktr": ACKTRConfig,
}
