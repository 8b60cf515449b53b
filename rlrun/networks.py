"""Separate actor and critic MLPs with orthogonal initialisation, and the two policy heads.

Categorical for Discrete action spaces, one Categorical per dimension for MultiDiscrete, one
Bernoulli per bit for MultiBinary; diagonal Gaussian with a state-independent log-std for Box
spaces, or with gSDE's state-dependent exploration (``algo.use_sde``); Box actions are sampled
unbounded and clipped only when sent to the env.
Both heads return ``torch.distributions`` objects, whose closed-form KL the algorithms use.

The actors and the critic fulfil :mod:`rlrun.core.contracts`, whose two forward paths are the
module forward and ``MLP.fast_forward`` (``F.linear``, about half the cost at rollout sizes; no
K-FAC hook sees it).
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from gymnasium import spaces
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal

from rlrun.core.activations import activation_
from rlrun.observations import check_encoder, image_shape, is_image, leaf_slices, leaves, obs_dim

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class MLP(nn.Sequential):
    """Linear/activation layers, after an optional encoder (a CNN for images). ``fast_forward``
    gives the same output without nn.Module calls in the MLP part."""

    def __init__(self, layers: list[nn.Module], activation: str, encoder: nn.Module | None = None):
        super().__init__(*([encoder] if encoder is not None else []), *layers)  # the encoder is module 0
        self.activation, self.has_encoder = activation, encoder is not None
        self.linears = tuple(m for m in layers if isinstance(m, nn.Linear))  # for fast_forward

    @property
    def encoder(self) -> nn.Module | None:
        return self[0] if self.has_encoder else None

    def encode(self, x: Tensor) -> Tensor:
        """The encoder's features (the observation itself without one)."""
        return self[0](x) if self.has_encoder else x

    def body(self, features: Tensor) -> Tensor:
        """The layers after the encoder, as modules (K-FAC's hooks see them)."""
        for module in itertools.islice(self, int(self.has_encoder), None):
            features = module(features)
        return features

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.encode(x))

    def fast_forward(self, x: Tensor, encoded: bool = False) -> Tensor:
        """forward() via F.linear on the same parameters: no per-layer module dispatch and no
        hooks, so K-FAC never sees it. Differentiable (first and higher order); half the cost of
        forward() at rollout batch sizes. Used by the rollout and by the PPO-Clip and critic losses.
        ``encoded``: ``x`` is already the encoder's features (``core.shared_encoder``)."""
        return self.fast_output(self.fast_hidden(x, encoded))

    def fast_hidden(self, x: Tensor, encoded: bool = False) -> Tensor:
        """The last hidden layer's activations (the input itself without hidden layers), by the fast path."""
        if self.has_encoder and not encoded:
            x = self[0](x)
        for linear in self.linears[:-1]:
            x = activation_(F.linear(x, linear.weight, linear.bias), self.activation)
        return x

    def fast_output(self, hidden: Tensor) -> Tensor:
        """The output layer on ``fast_hidden``'s activations, by the fast path."""
        return F.linear(hidden, self.linears[-1].weight, self.linears[-1].bias)

    def hidden(self, features: Tensor) -> Tensor:
        """The last hidden layer's activations from the encoder's features, as modules (K-FAC sees them)."""
        for module in itertools.islice(self, int(self.has_encoder), len(self) - 1):
            features = module(features)
        return features

    def output(self, hidden: Tensor) -> Tensor:
        """The output layer, as a module (K-FAC sees it): ``body(f) == output(hidden(f))``."""
        return self[-1](hidden)


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: str, out_gain: float, ortho_init: bool,
        encoder: nn.Module | None = None) -> MLP:
    """Linear/activation stack; orthogonal init with gain sqrt(2) inside and ``out_gain`` at the
    output; after ``encoder`` when given (``in_dim`` is then its output size)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not one of {', '.join(ACTIVATIONS)}")
    sizes = [in_dim, *hidden_sizes, out_dim]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(n_in, n_out)
        if ortho_init:
            is_output = i == len(sizes) - 2
            nn.init.orthogonal_(linear.weight, gain=out_gain if is_output else math.sqrt(2))
            nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return MLP(layers, activation, encoder)


class CategoricalActor(nn.Module):
    """pi(.|s) = Categorical(softmax(net(s))) for a Discrete action space."""

    distribution = "categorical"

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int], activation: str, ortho_init: bool,
                 encoder: nn.Module | None = None):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, n_actions, activation, out_gain=0.01, ortho_init=ortho_init, encoder=encoder)

    def forward(self, obs: Tensor) -> Distribution:
        return self.head(self.net.encode(obs))

    def head(self, features: Tensor) -> Distribution:
        """pi(.|s) from the encoder's features of s (an encoder shared with the critic runs once)."""
        return self.of_output(self.net.body(features))

    def distribution_of(self, obs: Tensor, encoded: bool = False) -> Distribution:
        """pi(.|s) through ``MLP.fast_forward``: the same values as ``actor(obs)``, without module
        dispatch and unseen by K-FAC's hooks (the trainer's diagnostics). The same in every head."""
        return self.of_output(self.net.fast_forward(obs, encoded))

    @staticmethod
    def of_output(logits: Tensor) -> Distribution:
        return Categorical(logits=logits)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor, encoded: bool = False) -> tuple[Tensor, Tensor]:
        """log pi(a|s) and the entropy H(pi(.|s)) (differentiable), without a Distribution object:
        one log-softmax serves both. Through ``MLP.fast_forward``, so invisible to K-FAC hooks.
        ``encoded``: ``obs`` is already the encoder's features (``core.shared_encoder``); the same
        in every head."""
        log_probs = torch.log_softmax(self.net.fast_forward(obs, encoded), dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1), entropy

    def act(self, obs: Tensor, deterministic: bool = False, generator: torch.Generator | None = None,
            encoded: bool = False) -> Tensor:
        """A sample a ~ pi(.|s), or its mode (the most probable action) when ``deterministic``: the
        one act path of the rollout, the evaluation and ``rlrun.load``. Log-probabilities are not
        computed here (the rollout computes them for the whole batch afterwards). ``encoded``:
        ``obs`` is already the encoder's features (the rollout's shared CNN, run once per step).

        Gumbel-max: argmax(logits + Gumbel noise) is an exact sample of softmax(logits), without
        building a Distribution object (a third of the per-step overhead at small batch sizes).
        """
        logits = self.net.fast_forward(obs, encoded)
        if deterministic:
            return torch.argmax(logits, dim=-1)
        gumbel = -torch.empty_like(logits).exponential_(generator=generator).log()
        return torch.argmax(logits + gumbel, dim=-1)


class MultiCategoricalActor(nn.Module):
    """pi(a|s) = prod_d Categorical(a_d | softmax(logits_d(s))) for MultiDiscrete(nvec): one
    categorical per dimension, independent given s, so log-prob, entropy and KL are sums over d.

    The net outputs sum(nvec) logits; they are laid out on a [D, max(nvec)] grid whose unused
    cells hold PAD, a logit so low that its probability is exactly 0 in float32 (finite, so that
    entropies and KLs stay finite), and the distribution is Independent(Categorical(grid), 1).
    """

    PAD = -1e9
    distribution = "multi_categorical"

    def __init__(self, obs_dim: int, nvec: Sequence[int], hidden_sizes: Sequence[int], activation: str, ortho_init: bool,
                 encoder: nn.Module | None = None):
        super().__init__()
        self.nvec = [int(n) for n in nvec]
        self.net = mlp(obs_dim, hidden_sizes, sum(self.nvec), activation, out_gain=0.01, ortho_init=ortho_init,
                       encoder=encoder)
        rows = torch.cat([torch.full((n,), d) for d, n in enumerate(self.nvec)])
        cols = torch.cat([torch.arange(n) for n in self.nvec])
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def _grid(self, flat: Tensor) -> Tensor:
        grid = flat.new_full((*flat.shape[:-1], len(self.nvec), max(self.nvec)), self.PAD)
        grid[..., self.rows, self.cols] = flat  # differentiable in flat; the padding stays constant
        return grid

    def forward(self, obs: Tensor) -> Distribution:
        return self.head(self.net.encode(obs))

    def head(self, features: Tensor) -> Distribution:
        return self.of_output(self.net.body(features))

    def distribution_of(self, obs: Tensor, encoded: bool = False) -> Distribution:
        return self.of_output(self.net.fast_forward(obs, encoded))

    def of_output(self, flat: Tensor) -> Distribution:
        return Independent(Categorical(logits=self._grid(flat)), 1)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor, encoded: bool = False) -> tuple[Tensor, Tensor]:
        """Sums over the dimensions of CategoricalActor's (actions [..., D], long)."""
        log_probs = torch.log_softmax(self._grid(self.net.fast_forward(obs, encoded)), dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum((-2, -1))
        return log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1).sum(-1), entropy

    def act(self, obs: Tensor, deterministic: bool = False, generator: torch.Generator | None = None,
            encoded: bool = False) -> Tensor:
        """[..., D]: the mode or a Gumbel-max sample of each dimension (see CategoricalActor.act)."""
        logits = self._grid(self.net.fast_forward(obs, encoded))
        if deterministic:
            return torch.argmax(logits, dim=-1)
        gumbel = -torch.empty_like(logits).exponential_(generator=generator).log()
        return torch.argmax(logits + gumbel, dim=-1)


class BernoulliActor(nn.Module):
    """pi(a|s) = prod_i Bernoulli(a_i | sigmoid(logit_i(s))) for MultiBinary(n): independent bits,
    actions as float 0/1 [..., n]."""

    distribution = "bernoulli"

    def __init__(self, obs_dim: int, n: int, hidden_sizes: Sequence[int], activation: str, ortho_init: bool,
                 encoder: nn.Module | None = None):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, n, activation, out_gain=0.01, ortho_init=ortho_init, encoder=encoder)

    def forward(self, obs: Tensor) -> Distribution:
        return self.head(self.net.encode(obs))

    def head(self, features: Tensor) -> Distribution:
        return self.of_output(self.net.body(features))

    def distribution_of(self, obs: Tensor, encoded: bool = False) -> Distribution:
        return self.of_output(self.net.fast_forward(obs, encoded))

    @staticmethod
    def of_output(logits: Tensor) -> Distribution:
        return Independent(Bernoulli(logits=logits), 1)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor, encoded: bool = False) -> tuple[Tensor, Tensor]:
        """log pi(a|s) = sum_i a_i log p_i + (1 - a_i) log(1 - p_i), with log p = logsigmoid(logit)."""
        logits = self.net.fast_forward(obs, encoded)
        log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
        log_prob = (actions * log_p + (1.0 - actions) * log_not_p).sum(-1)
        entropy = -(log_p.exp() * log_p + log_not_p.exp() * log_not_p).sum(-1)
        return log_prob, entropy

    def act(self, obs: Tensor, deterministic: bool = False, generator: torch.Generator | None = None,
            encoded: bool = False) -> Tensor:
        """The mode (bit 1 where p > 1/2) or a sample."""
        logits = self.net.fast_forward(obs, encoded)
        if deterministic:
            return (logits > 0).to(logits.dtype)
        uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        return (uniform < torch.sigmoid(logits)).to(logits.dtype)


def gaussian_log_prob_entropy(mean: Tensor, log_std: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """log N(a; mean, diag(exp(log_std))^2) and its entropy [N], in closed form (differentiable):
    ``log_std`` [actions] (one std for every state) or [N, actions] (a std per state)."""
    z = (actions - mean) * torch.exp(-log_std)
    log_prob = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    entropy = (log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(-1).expand(mean.shape[:-1])
    return log_prob, entropy


class GaussianActor(nn.Module):
    """pi(.|s) = N(net(s), diag(exp(log_std))^2) with a state-independent ``log_std`` parameter."""

    distribution = "gaussian"

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str, ortho_init: bool,
                 log_std_init: float, encoder: nn.Module | None = None):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, action_dim, activation, out_gain=0.01, ortho_init=ortho_init, encoder=encoder)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def forward(self, obs: Tensor) -> Distribution:
        return self.head(self.net.encode(obs))

    def head(self, features: Tensor) -> Distribution:
        return self.of_output(self.net.body(features))

    def distribution_of(self, obs: Tensor, encoded: bool = False) -> Distribution:
        return self.of_output(self.net.fast_forward(obs, encoded))

    def of_output(self, mean: Tensor) -> Distribution:
        return Independent(Normal(mean, self.log_std.exp().expand_as(mean)), 1)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor, encoded: bool = False) -> tuple[Tensor, Tensor]:
        """log pi(a|s) and H(pi(.|s)) in closed form (differentiable), without a Distribution object."""
        return gaussian_log_prob_entropy(self.net.fast_forward(obs, encoded), self.log_std, actions)

    def act(self, obs: Tensor, deterministic: bool = False, generator: torch.Generator | None = None,
            encoded: bool = False) -> Tensor:
        """A sample a ~ pi(.|s), or its mode (the mean) when ``deterministic`` (see CategoricalActor.act).
        Unbounded: the env's bounds are applied by ``acting.ActionDecoder``."""
        mean = self.net.fast_forward(obs, encoded)
        if deterministic:
            return mean
        noise = torch.randn_like(mean) if generator is None else torch.randn(mean.shape, generator=generator,
                                                                                device=mean.device)
        return mean + self.log_std.exp() * noise


class GSDEActor(nn.Module):
    """Generalised state-dependent exploration (gSDE; Raffin et al. 2021, SB3's ``use_sde``) for Box
    actions: a = mu(s) + z(s) Theta, with z(s) the actor's last hidden activations and Theta an
    exploration matrix [hidden, actions] whose entries are N(0, sigma_ij^2), ``sigma = exp(log_std)``
    a parameter of that shape. Theta is drawn per env and kept for several steps (``reset_noise``,
    with sigma as it is then: the rollout draws while the parameters stay fixed), so that the
    exploration is smooth in time, yet depends on the state.

    Given s, with Theta marginalised, a is Gaussian: N(mu(s), diag(z(s)^2 sigma^2 + EPS)). That
    diagonal Gaussian is pi(.|s) for every loss, KL and entropy (closed form, as the state-independent
    head's, with a std per state). z(s) enters the variance as a constant (no gradient flows from
    the exploration into the features: SB3's default ``learn_features=False``).
    """

    distribution = "gsde"
    EPS = 1e-6  # added to each variance, as SB3: z(s) = 0 (dead ReLUs) still gives a proper Gaussian

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: str, ortho_init: bool,
                 log_std_init: float, encoder: nn.Module | None = None):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, action_dim, activation, out_gain=0.01, ortho_init=ortho_init, encoder=encoder)
        latent = hidden_sizes[-1] if hidden_sizes else obs_dim
        self.log_std = nn.Parameter(torch.full((latent, action_dim), float(log_std_init)))
        # Theta, one [hidden, actions] matrix per env; drawn by reset_noise, not saved
        self.register_buffer("exploration", torch.zeros(0, latent, action_dim), persistent=False)

    def reset_noise(self, n: int, generator: torch.Generator | None = None) -> None:
        """New exploration matrices Theta = sigma * eps, eps ~ N(0, 1), for a batch of ``n`` (one per
        env, used row by row by ``act``)."""
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor, also when drawn in a rollout
            eps = torch.randn((n, *self.log_std.shape), generator=generator).to(self.log_std.device)
            self.exploration = eps * torch.exp(self.log_std)

    def std(self, hidden: Tensor) -> Tensor:
        """sqrt(z(s)^2 sigma^2 + EPS) [N, actions]; differentiable in ``log_std`` only."""
        return torch.sqrt(hidden.detach().pow(2) @ torch.exp(2.0 * self.log_std) + self.EPS)

    def forward(self, obs: Tensor) -> Distribution:
        return self.head(self.net.encode(obs))

    def head(self, features: Tensor) -> Distribution:
        hidden = self.net.hidden(features)
        return self.of_hidden(hidden, self.net.output(hidden))

    def distribution_of(self, obs: Tensor, encoded: bool = False) -> Distribution:
        hidden = self.net.fast_hidden(obs, encoded)
        return self.of_hidden(hidden, self.net.fast_output(hidden))

    def of_hidden(self, hidden: Tensor, mean: Tensor) -> Distribution:
        return Independent(Normal(mean, self.std(hidden)), 1)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor, encoded: bool = False) -> tuple[Tensor, Tensor]:
        """log pi(a|s) and H(pi(.|s)) of the marginal Gaussian, in closed form (differentiable)."""
        hidden = self.net.fast_hidden(obs, encoded)
        return gaussian_log_prob_entropy(self.net.fast_output(hidden), torch.log(self.std(hidden)), actions)

    def act(self, obs: Tensor, deterministic: bool = False, generator: torch.Generator | None = None,
            encoded: bool = False) -> Tensor:
        """mu(s) + z(s) Theta with row i's own Theta (the env's), or the mean when ``deterministic``.
        A batch of another size than the matrices drawn last draws new ones first."""
        hidden = self.net.fast_hidden(obs, encoded)
        mean = self.net.fast_output(hidden)
        if deterministic:
            return mean
        if self.exploration.shape[0] != len(hidden):
            self.reset_noise(len(hidden), generator)
        return mean + (hidden.detach().unsqueeze(1) @ self.exploration).squeeze(1)


class Critic(nn.Module):
    """V_phi(s), a separate MLP with a scalar output."""

    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int], activation: str, ortho_init: bool,
                 encoder: nn.Module | None = None):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, 1, activation, out_gain=1.0, ortho_init=ortho_init, encoder=encoder)

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.net.encode(obs))

    def head(self, features: Tensor) -> Tensor:
        """V(s) from the encoder's features of s."""
        return self.net.body(features).squeeze(-1)

    def value(self, obs: Tensor, encoded: bool = False) -> Tensor:
        """forward() through ``MLP.fast_forward``: differentiable but invisible to K-FAC hooks
        (the rollout, and the critic losses of PPO-Clip, TRPO and PPO-Penalty)."""
        return self.net.fast_forward(obs, encoded).squeeze(-1)


class CNN(nn.Module):
    """Images [N, C, H, W] -> features [N, features], ReLU throughout, orthogonal init (gain sqrt 2).

    ``nature``: the Nature-DQN encoder (Mnih et al. 2015) for 84x84 Atari frames: 32 8x8 stride 4,
    64 4x4 stride 2, 64 3x3 stride 1, then ``features`` (512). ``small``: the MinAtar baselines'
    one 16-channel 3x3 convolution, then ``features`` (128), for small grids such as 10x10xC.
    uint8 frames are scaled by 1/255 here, once, on the network's side (the buffer keeps bytes).
    """

    LAYERS = {"nature": ((32, 8, 4), (64, 4, 2), (64, 3, 1)), "small": ((16, 3, 1),)}

    def __init__(self, shape: Sequence[int], kind: str, features: int, scale: float):
        super().__init__()
        channels, layers = shape[0], []
        for out, kernel, stride in self.LAYERS[kind]:
            layers += [nn.Conv2d(channels, out, kernel, stride), nn.ReLU()]
            channels = out
        self.convs = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, *shape)).shape[1]
        self.linear = nn.Linear(n_flat, features)
        for module in [*self.convs, self.linear]:
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(module.weight, gain=math.sqrt(2))
                nn.init.zeros_(module.bias)
        self.scale = scale

    @property
    def features(self) -> int:
        return self.linear.out_features

    def forward(self, obs: Tensor) -> Tensor:
        # One new tensor, scaled in place: the same values as `obs.to(dtype) * scale` with one
        # allocation instead of two.
        scaled = obs.to(self.linear.weight.dtype, copy=True).mul_(self.scale)
        return torch.relu(self.linear(self.convs(scaled)))


class CompositeEncoder(nn.Module):
    """A Dict's or Tuple's flat vector [..., obs_dim] -> features: each image leaf's slice viewed as
    CxHxW through its own CNN, the other leaves' slices (one-hots, bits, normalised Boxes) as they
    are, all concatenated in the space's order (SB3's CombinedExtractor).

    ``parts``: per leaf, its slice of the flat vector and, for an image, its (C, H, W) and CNN."""

    def __init__(self, parts: list[tuple[slice, tuple[tuple[int, int, int], CNN] | None]]):
        super().__init__()
        self.slices = [sl for sl, _ in parts]
        self.image_shapes = [image[0] if image else None for _, image in parts]  # None: passed through
        self.cnns = nn.ModuleList([image[1] for _, image in parts if image])  # in leaf order

    @property
    def features(self) -> int:
        passed = sum(sl.stop - sl.start for sl, shape in zip(self.slices, self.image_shapes) if shape is None)
        return passed + sum(cnn.features for cnn in self.cnns)

    def forward(self, obs: Tensor) -> Tensor:
        out, cnns, lead = [], iter(self.cnns), obs.shape[:-1]
        for sl, shape in zip(self.slices, self.image_shapes):
            part = obs[..., sl]
            out.append(part if shape is None else next(cnns)(part.reshape(-1, *shape)).reshape(*lead, -1))
        return torch.cat(out, dim=-1)


CNN_FEATURES = {"nature": 512, "small": 128}


def _cnn(algo_cfg, kind: str, image: spaces.Box) -> CNN:
    """The CNN ``kind`` (auto: Nature-DQN from 36 pixels a side, the small one below) for one image space."""
    shape = image_shape(image)
    if kind == "auto":
        kind = "nature_cnn" if min(shape[1:]) >= 36 else "small_cnn"
    kind = kind.removesuffix("_cnn")
    scale = 1.0 / 255.0 if image.dtype == np.uint8 else 1.0
    return CNN(shape, kind, getattr(algo_cfg, "cnn_features", None) or CNN_FEATURES[kind], scale)


def make_encoder(algo_cfg, observation_space: spaces.Space) -> nn.Module | None:
    """The encoder ``algo.encoder`` names: a CNN for an image space; for a Dict or Tuple with image
    leaves, a CompositeEncoder with one CNN per image; None (an MLP on the flat observation) for
    everything else, and for every space with ``mlp``. ``auto`` picks the CNN by image size."""
    check_encoder(algo_cfg, observation_space)
    kind = getattr(algo_cfg, "encoder", None) or "auto"  # checkpoints from before the knob existed: auto
    if kind == "mlp" or not any(is_image(leaf) for _, leaf in leaves(observation_space)):
        return None
    if is_image(observation_space):
        return _cnn(algo_cfg, kind, observation_space)
    return CompositeEncoder([(sl, (image_shape(leaf), _cnn(algo_cfg, kind, leaf)) if is_image(leaf) else None)
                             for sl, leaf in leaf_slices(observation_space)])


def make_networks(algo_cfg, observation_space: spaces.Space, action_space: spaces.Space) -> tuple[nn.Module, Critic]:
    """The actor (its head chosen by the action space) and the critic for an algorithm's config,
    each with its own encoder (a CNN for images): actor and critic stay separate networks, unless
    ``algo.share_encoder`` (PPO-Clip, A2C) gives both the same encoder."""
    a = algo_cfg
    if getattr(a, "use_sde", False) and not isinstance(action_space, spaces.Box):
        raise ValueError(f"algo.use_sde=true needs Box (continuous) actions, not {action_space}")
    actor_encoder = make_encoder(a, observation_space)  # checks algo.share_encoder against the space too
    critic_encoder = actor_encoder if getattr(a, "share_encoder", False) else make_encoder(a, observation_space)
    n_obs = obs_dim(observation_space) if actor_encoder is None else actor_encoder.features
    common = dict(hidden_sizes=a.hidden_sizes, activation=a.activation, ortho_init=a.ortho_init, encoder=actor_encoder)
    if isinstance(action_space, spaces.Discrete):
        actor = CategoricalActor(n_obs, int(action_space.n), **common)
    elif isinstance(action_space, spaces.MultiDiscrete):
        actor = MultiCategoricalActor(n_obs, action_space.nvec.reshape(-1), **common)
    elif isinstance(action_space, spaces.MultiBinary):
        actor = BernoulliActor(n_obs, int(np.prod(action_space.shape)), **common)
    elif getattr(a, "use_sde", False):
        actor = GSDEActor(n_obs, action_space.shape[0], log_std_init=a.log_std_init, **common)
    else:
        actor = GaussianActor(n_obs, action_space.shape[0], log_std_init=a.log_std_init, **common)
    return actor, Critic(n_obs, a.hidden_sizes, a.activation, a.ortho_init, encoder=critic_encoder)
