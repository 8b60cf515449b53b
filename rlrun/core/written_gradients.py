"""The first-order losses of PPO-Clip, PPO-Penalty, A2C and the critics' fits with their gradients written out.

For an actor and a critic of plain Linear/activation layers (no CNN) with a categorical or a
diagonal Gaussian policy, the gradient of ``policy_loss + vf_coef * value_loss - ent_coef *
entropy`` (core.losses) is computed here by backpropagation written out, with no autograd graph:

    policy loss    PPO-Clip: -mean min(r A, clip(r, 1-eps, 1+eps) A), d/d log pi = -r A [r A <= clip(r) A] / B
                   A2C:      -mean log pi A,                         d/d log pi = -A / B
    value loss     mean (V - G)^2 (or the max with the clipped V),   d/dV = 2 (V - G) / B
    categorical    d log pi(a)/dz = onehot(a) - p,                   dH/dz = -p (log p + H)
    Gaussian       d log pi/d mu = (a - mu) / sigma^2,  d log pi/d log sigma = z^2 - 1,  dH/d log sigma = 1
    KL(pi_old||pi) categorical d/dz = p - p_old;  Gaussian d/d mu = (mu - mu_old) / sigma^2,
                   d/d log sigma = 1 - (sigma_old^2 + (mu - mu_old)^2) / sigma^2   (PPO-Penalty's penalty)
    MLP            dW_l = g_l^T h_{l-1},  db_l = sum g_l,  g_{l-1} = (g_l W_l) act'(h_{l-1})

At these sizes (64-unit layers, minibatches of 64-256) most of an autograd step is the graph's
per-node cost, not arithmetic; here a step is the arithmetic and a few ops more. Ties in min,
max and clamp follow autograd's rules. Each gradient is tested against autograd of the same
loss on random inputs (tests/core/test_written_gradients.py, 1e-6 relative). The gradients are
written into the parameters' ``.grad`` (each parameter's exactly once: overwritten, not added to).

The seeds of a batched sweep (``FlatParameters.stacked``) go through the same passes at once: each
layer's weights of all seeds are one [S, out, in] view, inputs are [S, B, ...], matrix products
become batched ones (``baddbmm``, ``bmm``), and means over the samples become means over the last
sample axis, one per seed.
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from rlrun.core.activations import activation_
from rlrun.core.flat_params import FlatParameters
from rlrun.networks import gaussian_log_prob_entropy

ACTIVATIONS = ("tanh", "relu")
HEADS = ("categorical", "gaussian")  # the actors' ``distribution`` written out here


def applies(actor: nn.Module | None, critic: nn.Module | None) -> bool:
    """Whether the actor and the critic (None: not asked about) are MLPs (rlrun.networks, no
    encoder), the actor with a policy head written out here; otherwise the algorithms use autograd."""
    nets = [getattr(module, "net", None) for module in (actor, critic) if module is not None]
    return ((actor is None or getattr(actor, "distribution", None) in HEADS)
            and all(getattr(net, "has_encoder", True) is False and getattr(net, "activation", None) in ACTIVATIONS
                    for net in nets))


class Layer(NamedTuple):
    """A Linear layer as the passes see it: its weight and bias and where their gradients go,
    [out, in] and [out] for one network, [S, out, in] and [S, out] for S stacked seeds."""

    weight: Tensor
    bias: Tensor
    weight_grad: Tensor
    bias_grad: Tensor


def layers_of(net: nn.Module, stacked: FlatParameters | None = None) -> list[Layer]:
    """``net``'s Linear layers (``MLP.linears``); with ``stacked``, every seed's, ``net`` being one
    seed's module (the shapes are all that is read from it)."""
    def views(p: Tensor) -> tuple[Tensor, Tensor]:
        return (p.detach(), p.grad) if stacked is None else stacked.across_seeds(p)

    layers = []
    for linear in net.linears:
        (weight, weight_grad), (bias, bias_grad) = views(linear.weight), views(linear.bias)
        layers.append(Layer(weight, bias, weight_grad, bias_grad))
    return layers


def _affine(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """h W^T + b, of one network ([B, in]) or batched over seeds ([S, B, in])."""
    if weight.dim() == 2:
        return torch.addmm(bias, h, weight.t())
    return torch.baddbmm(bias.unsqueeze(-2), h, weight.transpose(-1, -2))


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """a b, of one network's matrices or batched over seeds. Over an inner dimension of 1 (a
    critic's one output) it is the outer product, broadcast: a quarter of a product's time."""
    if a.shape[-1] == 1:
        return a * b
    return torch.mm(a, b) if a.dim() == 2 else torch.bmm(a, b)


def _weight_gradient(g: Tensor, h: Tensor, out: Tensor) -> None:
    """dW = g^T h into ``out`` ([..., out, in]). Where the layer has fewer inputs than outputs (an
    MLP's first layer: 4 observations, 64 units) it is computed as (h^T g)^T: a product whose last
    dimension is that narrow takes a slow path of the CPU's matrix kernels, several times the
    time of the transposed one. Computed into a fresh tensor, then copied: a product written
    straight into the strided gradient view is the slower."""
    if h.shape[-1] < g.shape[-1]:
        out.copy_(_matmul(h.transpose(-1, -2), g).transpose(-1, -2))
    else:
        out.copy_(_matmul(g.transpose(-1, -2), h))


class MLPPass:
    """One forward pass through an MLP (``layers_of``) that keeps each layer's input for the backward pass."""

    def __init__(self, layers: list[Layer], activation: str, x: Tensor):
        self.layers, self.activation, self.inputs, h = layers, activation, [x], x
        for layer in layers[:-1]:
            h = activation_(_affine(h, layer.weight, layer.bias), activation)
            self.inputs.append(h)
        self.out = _affine(h, layers[-1].weight, layers[-1].bias)

    @classmethod
    def of(cls, net: nn.Module, x: Tensor, stacked: FlatParameters | None = None) -> MLPPass:
        return cls(layers_of(net, stacked), net.activation, x)

    def directional(self, directions: list[tuple[Tensor, Tensor]]) -> Tensor:
        """d out along a direction in the parameters (one (weight, bias) pair a layer), by
        forward-mode differentiation: dz_l = h_{l-1} dW_l^T + db_l + dh_{l-1} W_l^T, dh_l = act'(z_l) dz_l."""
        dz = None
        for index, (layer, (d_weight, d_bias)) in enumerate(zip(self.layers, directions)):
            dh = None if dz is None else self._through_activation(dz, self.inputs[index])
            dz = _affine(self.inputs[index], d_weight, d_bias)
            if dh is not None:  # dz += dh W^T
                dz.addmm_(dh, layer.weight.t()) if dz.dim() == 2 else dz.baddbmm_(dh, layer.weight.transpose(-1, -2))
        return dz

    def _through_activation(self, g: Tensor, h: Tensor) -> Tensor:
        """``g`` times the activation's derivative at its output ``h``: g (1 - h^2) for tanh, g [h > 0]
        for relu, by the ops autograd's own backward of tanh and relu calls (one fused pass each),
        written over ``g``: a product this pass has just made, used nowhere else (no fresh tensor
        the size of a layer's activations, which for stacked seeds is a cache's worth)."""
        if self.activation == "tanh":
            return torch.ops.aten.tanh_backward.grad_input(g, h, grad_input=g)
        return torch.ops.aten.threshold_backward.grad_input(g, h, 0.0, grad_input=g)

    def _gradients_down(self, grad_out: Tensor) -> Iterator[tuple[int, Tensor]]:
        """(layer index, d loss / d that layer's output before its activation) from the last layer
        down, from ``grad_out`` = d loss / d out: g_{l-1} = (g_l W_l) act'(h_{l-1}), each made only
        when the next is asked for (a caller done with g_l lets it go)."""
        g = grad_out
        for index in range(len(self.layers) - 1, -1, -1):
            yield index, g
            if index > 0:
                g = self._through_activation(_matmul(g, self.layers[index].weight), self.inputs[index])

    def output_gradients(self, grad_out: Tensor) -> list[Tensor]:
        """d loss / d each layer's output (before its activation), the first layer's first: K-FAC's g
        of each layer (core.kfac), whose a is ``self.inputs``."""
        return [g for _, g in self._gradients_down(grad_out)][::-1]

    def backward(self, grad_out: Tensor, into: list[tuple[Tensor, Tensor]] | None = None) -> None:
        """Write d loss / d parameters from ``grad_out`` = d loss / d out into the layers'
        gradients, or into ``into``: one (weight, bias) pair of tensors a layer, in the layers' order."""
        for index, g in self._gradients_down(grad_out):
            layer = self.layers[index]
            weight_grad, bias_grad = (layer.weight_grad, layer.bias_grad) if into is None else into[index]
            _weight_gradient(g, self.inputs[index], weight_grad)
            torch.sum(g, -2, out=bias_grad)


def _log_softmax(out: Tensor) -> Tensor:
    """log softmax over the last axis of one network's [B, A] logits, or of stacked seeds' [S, B, A].
    The latter's goes along the axis before: torch's kernel along the last axis works a sample at
    a time, which for a few actions of thousands of samples takes several times as long as going
    over the samples in vector lanes (the same arithmetic, to float32 rounding; one network's
    logits keep the kernel its runs alone have always used)."""
    if out.dim() < 3:
        return torch.log_softmax(out, dim=-1)
    return torch.log_softmax(out.transpose(-1, -2).contiguous(), dim=-2).transpose(-1, -2)


class _Head:
    """log pi(a|s) and H(pi(.|s)) from the actor's MLP output, and their backward pass; over
    samples [B] or, for stacked seeds, [S, B] (a Gaussian's log-std then [S, A], one per seed)."""

    def __init__(self, actor: nn.Module, out: Tensor, actions: Tensor, stacked: FlatParameters | None):
        self.gaussian = actor.distribution == "gaussian"
        if self.gaussian:
            log_std, self.log_std_grad = ((actor.log_std.detach(), actor.log_std.grad) if stacked is None
                                          else stacked.across_seeds(actor.log_std))
            self.log_std = log_std = log_std.unsqueeze(-2)  # [1, A], or [S, 1, A]: broadcast over the samples
            self.inv_std = torch.exp(-log_std)
            self.z = (actions - out) * self.inv_std
            self.log_prob = (-0.5 * self.z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
            self.entropy = (log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum(-1).expand(out.shape[:-1])
        else:
            self.log_probs = _log_softmax(out)
            self.probs = self.log_probs.exp()
            self.actions = actions.unsqueeze(-1)
            self.log_prob = self.log_probs.gather(-1, self.actions).squeeze(-1)
            self.entropy = -(self.probs * self.log_probs).sum(-1)

    def grad_out(self, g_log_prob: Tensor, g_entropy: float, log_std_grad: bool = True) -> Tensor:
        """d loss / d out for d loss / d log pi = ``g_log_prob`` (per sample) and d loss / d H =
        ``g_entropy`` (each sample's); a Gaussian's log-std gradient is written to its gradient
        (unless ``log_std_grad`` is false)."""
        if self.gaussian:
            samples = self.z.shape[-2]
            if log_std_grad:
                self.log_std_grad.copy_((g_log_prob[..., None] * (self.z * self.z - 1.0)).sum(-2) + g_entropy * samples)
            return (self.z * self.inv_std).mul_(g_log_prob[..., None])
        one_hot = torch.zeros_like(self.probs).scatter_(-1, self.actions, 1.0)  # (no scatter_add: deterministic on CUDA)
        grad = (one_hot - self.probs).mul_(g_log_prob[..., None])
        if g_entropy:
            grad -= g_entropy * self.probs * (self.log_probs + self.entropy[..., None])
        return grad


class LossTerms(NamedTuple):
    policy_loss: Tensor
    value_loss: Tensor
    entropy: Tensor  # the mean entropy
    log_prob: Tensor  # log pi(a|s) per sample


def _value_loss_and_grad(values: Tensor, returns: Tensor, old_values: Tensor | None,
                         clip_eps: float | None) -> tuple[Tensor, Tensor]:
    """core.losses.value_loss and its gradient in ``values``."""
    error = values - returns
    loss = error * error
    if clip_eps is None or old_values is None:
        return loss.mean(-1), error * (2.0 / values.shape[-1])
    delta = values - old_values
    clipped_error = old_values + torch.clamp(delta, -clip_eps, clip_eps) - returns
    clipped_loss = clipped_error * clipped_error
    inside = (delta >= -clip_eps) & (delta <= clip_eps)  # where the clamp passes a gradient
    clipped_grad = torch.where(inside, clipped_error, 0.0)
    grad = torch.where(loss > clipped_loss, error, torch.where(loss < clipped_loss, clipped_grad,
                                                               0.5 * (error + clipped_grad)))  # a tie: half each (autograd)
    return torch.maximum(loss, clipped_loss).mean(-1), grad * (2.0 / values.shape[-1])


@torch.no_grad()
def policy_value_gradient(actor: nn.Module, critic: nn.Module, obs: Tensor, actions: Tensor, advantages: Tensor,
                          returns: Tensor, *, vf_coef: float, ent_coef: float, old_log_prob: Tensor | None = None,
                          clip_eps: float | None = None, old_values: Tensor | None = None,
                          clip_value_eps: float | None = None, stacked: FlatParameters | None = None) -> LossTerms:
    """The gradient of ``policy_loss + vf_coef * value_loss - ent_coef * entropy`` into ``.grad``.

    The policy loss is PPO-Clip's clipped surrogate when ``old_log_prob`` and ``clip_eps`` are
    given (core.losses.clipped_surrogate), else A2C's ``-mean(log pi * A)``; the value loss is
    core.losses.value_loss (clipped around ``old_values`` with ``clip_value_eps``).
    ``stacked``: the seeds' parameters, ``actor`` and ``critic`` the first seed's modules, every
    input [S, B, ...], every returned term one per seed; the gradients go into ``stacked``'s rows."""
    n = obs.shape[-2]
    actor_pass = MLPPass.of(actor.net, obs, stacked)
    head = _Head(actor, actor_pass.out, actions, stacked)
    if old_log_prob is None:
        policy_loss = -(head.log_prob * advantages).mean(-1)
        g_log_prob = advantages * (-1.0 / n)
    else:
        ratio = torch.exp(head.log_prob - old_log_prob)
        unclipped, clipped = ratio * advantages, torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
        policy_loss = -torch.min(unclipped, clipped).mean(-1)
        g_log_prob = torch.where(unclipped <= clipped, unclipped, 0.0).mul_(-1.0 / n)  # d r / d log pi = r
    actor_pass.backward(head.grad_out(g_log_prob, -ent_coef / n))
    critic_pass = MLPPass.of(critic.net, obs, stacked)
    value_loss, g_value = _value_loss_and_grad(critic_pass.out.squeeze(-1), returns, old_values, clip_value_eps)
    critic_pass.backward((g_value * vf_coef).unsqueeze(-1))
    return LossTerms(policy_loss, value_loss, head.entropy.mean(-1), head.log_prob)


class PenaltyTerms(NamedTuple):
    surrogate: Tensor  # mean(r A)
    kl: Tensor  # mean KL(pi_old || pi)
    log_prob: Tensor  # log pi(a|s) per sample


@torch.no_grad()
def kl_penalty_gradient(actor: nn.Module, obs: Tensor, actions: Tensor, old_log_prob: Tensor, advantages: Tensor,
                        old_out: Tensor, old_log_std: Tensor | None, kl_coef: float | Tensor, ent_coef: float,
                        stacked: FlatParameters | None = None) -> PenaltyTerms:
    """The gradient of PPO-Penalty's loss ``-(mean(r A) - kl_coef * mean KL(pi_old || pi) + ent_coef *
    mean H)`` (eq. 5.37) into the actor's ``.grad``. pi_old is given by its MLP outputs ``old_out``
    (the logits, or a Gaussian's mean) and a Gaussian's ``old_log_std``; ``kl_coef`` is lambda, one
    float or (stacked) one a seed [S]. Returns the surrogate and the KL (one per seed, as in
    :func:`policy_value_gradient`) and log pi(a|s)."""
    n = obs.shape[-2]
    actor_pass = MLPPass.of(actor.net, obs, stacked)
    head = _Head(actor, actor_pass.out, actions, stacked)
    weighted = torch.exp(head.log_prob - old_log_prob).mul_(advantages)  # r A; d r / d log pi = r
    grad = head.grad_out(weighted * (-1.0 / n), -ent_coef / n)
    penalty = (kl_coef / n if isinstance(kl_coef, float) else (kl_coef / n)[:, None, None])  # lambda / n
    if head.gaussian:
        old_log_std = old_log_std.unsqueeze(-2)
        diff = actor_pass.out - old_out
        var_ratio = torch.exp(2.0 * (old_log_std - head.log_std))  # sigma_old^2 / sigma^2
        t1 = (diff * head.inv_std).pow(2)
        kl = (0.5 * (var_ratio + t1 - 1.0) - (old_log_std - head.log_std)).sum(-1)
        grad += penalty * diff * head.inv_std.pow(2)
        head.log_std_grad += (penalty * (1.0 - var_ratio - t1)).sum(-2)
    else:
        old_log_probs = _log_softmax(old_out)
        old_probs = old_log_probs.exp()
        kl = (old_probs * (old_log_probs - head.log_probs)).sum(-1)
        grad += penalty * (head.probs - old_probs)
    actor_pass.backward(grad)
    return PenaltyTerms(weighted.mean(-1), kl.mean(-1), head.log_prob)


@torch.no_grad()
def ratio_surrogate_gradient(actor: nn.Module, obs: Tensor, actions: Tensor, old_log_prob: Tensor, advantages: Tensor,
                             stacked: FlatParameters | None = None) -> Tensor:
    """The gradient of TRPO's surrogate mean(pi(a|s) / pi_old(a|s) A) (core.losses.ratio_surrogate;
    d/d log pi = r A / B) into the actor's ``.grad``, to be maximised; returns the surrogate (with
    ``stacked``, as in :func:`policy_value_gradient`: one per seed)."""
    actor_pass = MLPPass.of(actor.net, obs, stacked)
    head = _Head(actor, actor_pass.out, actions, stacked)
    weighted = torch.exp(head.log_prob - old_log_prob).mul_(advantages)
    actor_pass.backward(head.grad_out(weighted / obs.shape[-2], 0.0))
    return weighted.mean(-1)


@torch.no_grad()
def policy_gradient(actor: nn.Module, forward: MLPPass, actions: Tensor, advantages: Tensor, ent_coef: float,
                    stacked: FlatParameters | None = None) -> Tensor:
    """The gradient of A2C's policy loss, ``-mean(log pi(a|s) A) - ent_coef * mean H`` (ACKTR's
    objective), into the actor's ``.grad``, from ``forward``: the actor's MLP pass on the batch's
    observations (``MLPPass.of``). Returns the loss (with ``stacked``, as in
    :func:`policy_value_gradient`: one per seed)."""
    n = forward.out.shape[-2]
    head = _Head(actor, forward.out, actions, stacked)
    forward.backward(head.grad_out(advantages * (-1.0 / n), -ent_coef / n))
    return -(head.log_prob * advantages).mean(-1) - ent_coef * head.entropy.mean(-1)


@torch.no_grad()
def score_output_gradients(actor: nn.Module, forward: MLPPass, actions: Tensor,
                           stacked: FlatParameters | None = None) -> list[Tensor]:
    """d/d each layer's output of ``-mean log pi(a|s)`` over ``forward``'s samples
    (:meth:`MLPPass.output_gradients`): with actions sampled from pi, the g of K-FAC's Fisher
    statistics (core.kfac). No parameter's gradient is written."""
    n = forward.out.shape[-2]
    head = _Head(actor, forward.out, actions, stacked)
    return forward.output_gradients(head.grad_out(torch.full_like(head.log_prob, -1.0 / n), 0.0, log_std_grad=False))


@torch.no_grad()
def policy_of(actor: nn.Module, obs: Tensor, stacked: FlatParameters) -> Distribution:
    """pi(.|s) of every seed of ``stacked`` (``actor`` the first seed's, ``obs`` [S, B, ...]) from one
    pass, as each actor's own head gives it, with batch shape [S, B]. (One actor alone has its
    ``of_output``.)"""
    return policy_from(actor, MLPPass.of(actor.net, obs, stacked).out, stacked)


def policy_from(actor: nn.Module, out: Tensor, stacked: FlatParameters) -> Distribution:
    """:func:`policy_of` from the MLP outputs ``out`` [S, B, ...] of a pass already made."""
    log_std = stacked.across_seeds(actor.log_std)[0] if actor.distribution == "gaussian" else None
    return _stacked_policy(actor.distribution, out, log_std)


def _seeds_output(modules: list[nn.Module], obs: Tensor) -> Tensor:
    """The MLP outputs [S, B, out] of seeds whose networks are separate modules (their weights
    stacked here, copies), seed s's on ``obs[s]``."""
    layers = [Layer(torch.stack([linear.weight.detach() for linear in linears]),
                    torch.stack([linear.bias.detach() for linear in linears]), None, None)  # type: ignore[arg-type]
              for linears in zip(*(module.net.linears for module in modules))]
    return MLPPass(layers, modules[0].net.activation, obs).out


def _seeds_log_std(actors: list[nn.Module]) -> Tensor | None:
    return torch.stack([actor.log_std.detach() for actor in actors]) if actors[0].distribution == "gaussian" else None


@torch.no_grad()
def policies_of(actors: list[nn.Module], obs: Tensor) -> Distribution:
    """:func:`policy_of` for seeds whose actors are separate modules: seed s's policy on ``obs[s]``."""
    return _stacked_policy(actors[0].distribution, _seeds_output(actors, obs), _seeds_log_std(actors))


@torch.no_grad()
def seeds_policy_log_prob(actors: list[nn.Module], obs: Tensor, actions: Tensor) -> tuple[Distribution, Tensor]:
    """pi(.|s) ([S, B], as :func:`policies_of`) and log pi(a|s) [S, B] of seeds whose actors are
    separate modules, seed s's on ``obs[s]`` and ``actions[s]``, the log-probabilities as each
    actor's ``log_prob_entropy`` gives them; from one pass."""
    out = _seeds_output(actors, obs)
    log_std = _seeds_log_std(actors)
    if log_std is None:
        log_prob = _log_softmax(out).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    else:
        log_prob = gaussian_log_prob_entropy(out, log_std.unsqueeze(-2), actions)[0]
    return _stacked_policy(actors[0].distribution, out, log_std), log_prob


@torch.no_grad()
def seeds_values(critics: list[nn.Module], obs: Tensor) -> Tensor:
    """V(s) [S, B] of seeds whose critics are separate modules, seed s's on ``obs[s]``."""
    return _seeds_output(critics, obs).squeeze(-1)


def _stacked_policy(distribution: str, out: Tensor, log_std: Tensor | None) -> Distribution:
    """The head's distribution from the MLP outputs [S, B, ...] and a Gaussian's log-std [S, A]
    (one std a seed, for all its samples)."""
    if distribution == "categorical":
        return Categorical(logits=out)
    return Independent(Normal(out, log_std.unsqueeze(-2).exp().expand_as(out)), 1)


@torch.no_grad()
def value_gradient(critic: nn.Module, obs: Tensor, returns: Tensor, stacked: FlatParameters | None = None) -> Tensor:
    """The gradient of mean (V(s) - G)^2 into the critic's ``.grad``; returns the loss (with
    ``stacked``, as in :func:`policy_value_gradient`: one per seed)."""
    critic_pass = MLPPass.of(critic.net, obs, stacked)
    loss, grad = _value_loss_and_grad(critic_pass.out.squeeze(-1), returns, None, None)
    critic_pass.backward(grad.unsqueeze(-1))
    return loss
