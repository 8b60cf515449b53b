"""K-FAC preconditioner for the ``nn.Linear`` and ``nn.Conv2d`` layers of one module (ACKTR, section 5.9).

Martens & Grosse 2015 (K-FAC) approximate the Fisher F = E_s E_{a~pi}[grad log pi grad log pi^T]
(eqs. 5.45-5.48) by a block-diagonal matrix with one block per layer (sec. 4.2), and each block by
a Kronecker product (sec. 3). For a linear layer ``x_out = W x_in + b`` write the bias as a
homogeneous coordinate, ``a = [x_in, 1]`` and ``G = [W, b]`` ([out, in+1]); with
``g = d log pi / d x_out`` the per-sample gradient is ``g a^T`` and, with column-major vec,

    vec(g a^T) = a (x) g      so      F_layer = E[a a^T (x) g g^T] ~= A (x) S,
    A = E[a a^T],  S = E[g g^T]                                  (Martens & Grosse 2015, eq. 1)

For a convolution (Grosse & Martens 2016, "KFC") ``a`` is an unfolded input patch with the bias
coordinate, one per output position t of the T = H_out x W_out, and ``G = [W reshaped to
[out, in x kh x kw], b]``. The weight gradient is sum_t g_t a_t^T; assuming independent
activations and derivatives, spatial homogeneity and spatially uncorrelated derivatives (their
IAD, SH and SUD), F_layer ~= sum_t E[a_t a_t^T] (x) E[g_t g_t^T] = A (x) S with

    A = E over samples and positions of a a^T,   S = T x E over samples and positions of g g^T
      = E over samples of sum_t g_t g_t^T        (the spatial-size correction: sums, not means, of S)

Wu et al. 2017 (ACKTR) use running averages of A and S, refresh the inverses every few updates,
and scale the step with a trust region (sec. 3.1), see
:func:`rlrun.core.natural_gradient.trust_region_scale`.

Usage (one iteration)::

    kfac = KFAC(actor, stat_decay=0.99, damping=1e-2, inv_every=10)  # once
    dist = actor_dist(obs)                                    # forward
    sampled = dist.sample()                                   # TRUE Fisher, not empirical
    with kfac.capture_statistics():
        dist.log_prob(sampled).mean().backward(retain_graph=True)  # Fisher loss
    actor.zero_grad()                                         # drop the Fisher loss's grads
    policy_loss(dist, ...).backward()                         # the objective
    direction = kfac.natural_gradient()                       # F_hat^-1 grad, per parameter
    step = trust_region_scale(quadratic, max_kl, eta_max)     # Delta^T F Delta: rlrun/algos/acktr.py

Which forward the hooks see: the module forward only (``actor(obs)``, ``critic(obs)``), not the
networks' fast path (:mod:`rlrun.core.contracts`). So the Fisher loss is built from the module
forward, and anything that must not disturb the statistics uses the fast path.

Design (visible state, house rule 4):

* A forward hook is registered on every ``nn.Linear`` at construction. When the layer output
  requires grad it attaches a tensor hook to that output, closing over the layer input; the
  tensor hook records ``(a, g)`` only while :meth:`KFAC.capture_statistics` is open and is a
  no-op otherwise. The forward may therefore run before the context; only the Fisher loss's
  backward must run inside it. The model is never modified.
* The exponential moving averages are updated ONCE, when the context exits (first update:
  the EMA is set to the batch value). Factors are kept in float64.
* **Gradient scaling convention**: the Fisher loss must be the MEAN over the batch of
  ``log pi(a_sampled | s)`` (the sign does not matter). Backward hooks then see ``g_i / n`` for
  the ``n`` rows of the layer output, so the recorded gradients are multiplied by ``n`` and
  ``S`` estimates ``E[g g^T]`` of per-sample gradients of ``log pi``.
* A layer used several times in the forward (an encoder shared by the actor and the critic, run
  once by each) is a weight shared across uses, as a convolution's across positions, and is
  treated the same way: S sums the uses' gradient covariances, A averages their inputs. For the
  joint Fisher of pi(a|s) N(y; V(s), 1) (Wu et al. 2017, sec. 3.2) the cross terms vanish
  exactly in expectation (each sampled score has mean zero), so S = S_pi + S_V.
* The same class preconditions a critic (Gauss-Newton Fisher of a Gaussian output, Wu et al.
  2017 sec. 3.2): use ``mean(0.5 * (v - (v.detach() + noise))**2)`` with unit-variance noise
  as the Fisher loss.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class _LayerState:
    """Running factors of one layer and their (possibly stale) eigendecompositions."""

    name: str
    module: nn.Linear | nn.Conv2d
    A: Tensor | None = None  # [in+1, in+1], float64
    S: Tensor | None = None  # [out, out], float64
    eig_A: tuple[Tensor, Tensor] | None = None  # (eigenvalues d_A, eigenvectors Q_A), in KFAC.dtype
    eig_S: tuple[Tensor, Tensor] | None = None  # (eigenvalues d_S, eigenvectors Q_S)


class KFAC:
    """Kronecker-factored approximate Fisher of all ``nn.Linear`` and ``nn.Conv2d`` layers of ``module``.

    Args:
        module: the network whose ``nn.Linear`` and ``nn.Conv2d`` submodules (in ``named_modules``
            order) are preconditioned; other parameters (e.g. a Gaussian log-std) are left alone.
        stat_decay: EMA decay of the factors, ``A <- decay * A + (1 - decay) * A_batch``
            (Martens & Grosse 2015, sec. 5). ``0`` keeps only the latest batch.
        damping: Tikhonov damping lambda added to the whole Kronecker block,
            ``(A (x) S + lambda I)^-1`` (Martens & Grosse 2015, sec. 6.3), see
            :meth:`natural_gradient`.
        inv_every: the eigendecompositions are recomputed on every ``inv_every``-th call of
            :meth:`natural_gradient` (the first call always computes them); in between the
            stale ones are used with the current damping (Wu et al. 2017, sec. 3.1).
        eig_floor: eigenvalues of A and S are clamped at ``>= eig_floor`` before use.
        dtype: the arithmetic of the batch statistics (a^T a, g^T g) and of the preconditioning
            products; the factors and their averages stay float64, and are eigendecomposed in
            float64, then kept in ``dtype``. float32 is faster on the Nature CNN (benchmarks/pixel_update.py).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        stat_decay: float = 0.99,
        damping: float = 1e-2,
        inv_every: int = 10,
        eig_floor: float = 1e-10,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if not 0.0 <= stat_decay < 1.0:
            raise ValueError(f"stat_decay must be in [0, 1), got {stat_decay}")
        if damping < 0.0:
            raise ValueError(f"damping must be >= 0, got {damping}")
        if inv_every < 1:
            raise ValueError(f"inv_every must be >= 1, got {inv_every}")
        if eig_floor < 0.0:
            raise ValueError(f"eig_floor must be >= 0, got {eig_floor}")
        self.stat_decay = stat_decay
        self.damping = damping
        self.inv_every = inv_every
        self.eig_floor = eig_floor
        self.dtype = dtype
        self.num_steps = 0  # calls of natural_gradient so far
        self.num_updates = 0  # EMA updates (captures) so far
        self.layers: list[_LayerState] = [
            _LayerState(name=name or "<root>", module=m)
            for name, m in module.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))
        ]
        if not self.layers:
            raise ValueError("KFAC: the module has no nn.Linear or nn.Conv2d layer")
        for layer in self.layers:
            if layer.module.bias is None:
                raise ValueError(f"KFAC: layer '{layer.name}' has no bias (bias=True is assumed)")
            conv = layer.module
            if isinstance(conv, nn.Conv2d) and (conv.groups != 1 or conv.padding_mode != "zeros"
                                                or isinstance(conv.padding, str)):
                raise ValueError(f"KFAC: conv layer '{layer.name}' must have groups=1, zero padding and "
                                 "numeric padding (KFC's unfolded patches)")
        self._capturing = False
        self._records: list[list[tuple[Tensor, Tensor]]] = [[] for _ in self.layers]
        self._handles = [
            layer.module.register_forward_hook(self._make_forward_hook(i))
            for i, layer in enumerate(self.layers)
        ]

    # ------------------------------------------------------------------ statistics capture
    def _make_forward_hook(self, index: int):
        def forward_hook(mod: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            if not (torch.is_grad_enabled() and output.requires_grad):
                return
            x_in = args[0].detach()

            def grad_hook(grad: Tensor) -> None:
                if self._capturing:
                    self._records[index].append((x_in, grad.detach()))

            output.register_hook(grad_hook)

        return forward_hook

    @contextlib.contextmanager
    def capture_statistics(self) -> Iterator[None]:
        """Record layer inputs and output gradients of backward passes run inside the block.

        Run the backward of the Fisher loss (batch MEAN of log pi of actions SAMPLED from the
        current policy) inside. On a clean exit the EMAs of A and S are updated once
        (Martens & Grosse 2015, sec. 5); the block's backward also fills ``.grad``, which the
        caller zeroes before the objective's backward.
        """
        if self._capturing:
            raise RuntimeError("KFAC.capture_statistics is not re-entrant")
        self._records = [[] for _ in self.layers]
        self._capturing = True
        try:
            yield
        finally:
            self._capturing = False
        records, self._records = self._records, [[] for _ in self.layers]
        self.update_factors(records)

    def update_factors(self, records: list[list[tuple[Tensor, Tensor]]]) -> None:
        """EMA update of A = E[a a^T] and S = E[g g^T] from a batch's records: per layer (in
        ``self.layers``' order), one ``(layer input, d Fisher loss / d layer output)`` a use of
        the layer, the loss a batch mean as in :meth:`capture_statistics` (which records them from
        the module's hooks; a pass written out gives them itself)."""
        if len(records) != len(self.layers):
            raise ValueError(f"KFAC: records of {len(records)} layers for {len(self.layers)} layers")
        for layer, recs in zip(self.layers, records):
            if not recs:
                raise RuntimeError(
                    f"KFAC: no statistics were captured for layer '{layer.name}'; run the Fisher "
                    "loss's backward inside capture_statistics()"
                )
        for layer, recs in zip(self.layers, records):
            A_batch, S_batch, rows = 0.0, 0.0, 0
            for x_in, grad in recs:  # one record per use of the layer in the forward
                a, g, n = _rows(layer.module, x_in, grad, self.dtype)
                a = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
                g = g * n  # mean-loss convention over the n samples: per-sample grads
                A_batch, rows = A_batch + (a.T @ a).to(torch.float64), rows + a.shape[0]
                # a sum over positions (conv) and uses, a mean over samples
                S_batch = S_batch + (g.T @ g).to(torch.float64) / n
            A_batch = A_batch / rows  # a mean over samples, positions and uses
            if layer.A is None or layer.S is None:
                layer.A, layer.S = A_batch, S_batch
            else:
                decay = self.stat_decay
                layer.A = decay * layer.A + (1.0 - decay) * A_batch
                layer.S = decay * layer.S + (1.0 - decay) * S_batch
            _check_finite(layer.A, layer.name, "A")
            _check_finite(layer.S, layer.name, "S")
        self.num_updates += 1

    # ------------------------------------------------------------------ preconditioning
    def parameters(self) -> list[nn.Parameter]:
        """The preconditioned parameters in order: weight, bias of each layer."""
        params: list[nn.Parameter] = []
        for layer in self.layers:
            params += [layer.module.weight, layer.module.bias]
        return params

    def _refresh_eigendecompositions(self) -> None:
        for layer in self.layers:
            if layer.A is None or layer.S is None:
                raise RuntimeError(
                    f"KFAC: layer '{layer.name}' has no factors yet; call capture_statistics first"
                )
            layer.eig_A = _floored_eigh(layer.A, layer.name, "A", self.eig_floor, self.dtype)
            layer.eig_S = _floored_eigh(layer.S, layer.name, "S", self.eig_floor, self.dtype)

    def natural_gradient(self) -> list[Tensor]:
        """``(A (x) S + damping I)^-1 vec([grad_W, grad_b])`` per layer, split into W and b.

        Reads the current ``.grad`` of each weight and bias (missing grads count as zero) and
        does not write into it. With ``A = Q_A diag(d_A) Q_A^T`` and ``S = Q_S diag(d_S) Q_S^T``

            V = Q_S [ (Q_S^T G Q_A) / (d_S d_A^T + damping) ] Q_A^T

        which equals the exact damped inverse of the Kronecker block applied to vec(G)
        (Martens & Grosse 2015, sec. 6.3 "exact" alternative to factored damping; Grosse &
        Martens 2016, app. A.2) up to the eigenvalue floor. The eigendecompositions are
        refreshed on the first call and every ``inv_every``-th call.

        Returns:
            the directions in the order of :meth:`parameters`, same shapes and dtypes.
        """
        if self.num_steps % self.inv_every == 0 or any(l.eig_A is None for l in self.layers):
            self._refresh_eigendecompositions()
        self.num_steps += 1
        directions: list[Tensor] = []
        for layer in self.layers:
            weight, bias = layer.module.weight, layer.module.bias
            assert layer.eig_A is not None and layer.eig_S is not None and bias is not None
            G = torch.cat([_grad_or_zeros(weight).reshape(weight.shape[0], -1), _grad_or_zeros(bias)[:, None]], dim=1)
            d_A, Q_A = layer.eig_A
            d_S, Q_S = layer.eig_S
            V = Q_S @ ((Q_S.T @ G.to(self.dtype) @ Q_A) / (d_S[:, None] * d_A[None, :] + self.damping)) @ Q_A.T
            directions += [V[:, :-1].to(weight.dtype).reshape(weight.shape).contiguous(),
                           V[:, -1].to(bias.dtype).contiguous()]
        return directions

    # ------------------------------------------------------------------ logging, checkpoints
    def factor_eigenvalue_range(self, layer_index: int = 0) -> dict[str, float]:
        """Min/max eigenvalue of the current (unfloored) A and S of one layer, for logging.

        Keys: ``A_eig_min``, ``A_eig_max``, ``S_eig_min``, ``S_eig_max``.
        """
        layer = self.layers[layer_index]
        if layer.A is None or layer.S is None:
            raise RuntimeError(f"KFAC: layer '{layer.name}' has no factors yet")
        eig_A = torch.linalg.eigvalsh(layer.A)
        eig_S = torch.linalg.eigvalsh(layer.S)
        return {
            "A_eig_min": float(eig_A[0]),
            "A_eig_max": float(eig_A[-1]),
            "S_eig_min": float(eig_S[0]),
            "S_eig_max": float(eig_S[-1]),
        }

    def state_dict(self) -> dict[str, Any]:
        """Factors, eigendecompositions and counters (enough to resume exactly)."""

        def clone(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.detach().clone()

        return {
            "num_steps": self.num_steps,
            "num_updates": self.num_updates,
            "layers": [
                {"name": l.name, "A": clone(l.A), "S": clone(l.S),
                 "eig_A": _clone_eig(l.eig_A), "eig_S": _clone_eig(l.eig_S)}
                for l in self.layers
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (hyperparameters come from the config)."""
        if len(state["layers"]) != len(self.layers):
            raise ValueError(
                f"KFAC state has {len(state['layers'])} layers, this module has {len(self.layers)}"
            )
        for layer, saved in zip(self.layers, state["layers"]):
            if saved["name"] != layer.name:
                raise ValueError(f"KFAC state layer '{saved['name']}' != '{layer.name}'")
            layer.A = None if saved["A"] is None else saved["A"].clone().to(torch.float64)
            layer.S = None if saved["S"] is None else saved["S"].clone().to(torch.float64)
            layer.eig_A = _clone_eig(saved["eig_A"])
            layer.eig_S = _clone_eig(saved["eig_S"])
        self.num_steps = int(state["num_steps"])
        self.num_updates = int(state["num_updates"])

    def remove_hooks(self) -> None:
        """Detach the forward hooks from the module (the object is unusable afterwards)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _rows(module: nn.Module, x_in: Tensor, grad: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, int]:
    """(a, g, samples): rows in ``dtype``, one per sample (Linear; any leading dims are samples too) or
    one per sample and output position (Conv2d: the unfolded input patch, and the output gradient
    there), and the number of samples the loss is a mean over."""
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(x_in, module.kernel_size, dilation=module.dilation, padding=module.padding,
                           stride=module.stride)  # [N, in x kh x kw, T], channels-major as the weight
        a = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        g = grad.permute(0, 2, 3, 1).reshape(-1, grad.shape[1])
        return a.to(dtype), g.to(dtype), grad.shape[0]
    a, g = x_in.reshape(-1, x_in.shape[-1]), grad.reshape(-1, grad.shape[-1])
    return a.to(dtype), g.to(dtype), g.shape[0]


def _grad_or_zeros(param: nn.Parameter) -> Tensor:
    return torch.zeros_like(param) if param.grad is None else param.grad.detach()


def _clone_eig(eig: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor] | None:
    return None if eig is None else (eig[0].clone(), eig[1].clone())


def _check_finite(t: Tensor, layer: str, what: str) -> None:
    if not torch.isfinite(t).all():
        raise FloatingPointError(f"KFAC: {what} of layer '{layer}' is not finite")


def _floored_eigh(factor: Tensor, layer: str, what: str, floor: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Eigendecomposition of a symmetric (float64) factor with eigenvalues clamped at ``>= floor``,
    returned in ``dtype``, the arithmetic of the preconditioning products."""
    _check_finite(factor, layer, f"factor {what}")
    eigvals, eigvecs = torch.linalg.eigh(factor)
    if not (torch.isfinite(eigvals).all() and torch.isfinite(eigvecs).all()):
        raise FloatingPointError(
            f"KFAC: eigendecomposition of {what} of layer '{layer}' is not finite"
        )
    return eigvals.clamp_min(floor).to(dtype), eigvecs.to(dtype)
