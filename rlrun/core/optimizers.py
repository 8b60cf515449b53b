"""Adam and RMSprop on one flat parameter vector (:class:`rlrun.core.flat_params.FlatParameters`).

The same arithmetic as ``torch.optim.Adam`` and ``torch.optim.RMSprop`` (without weight decay,
momentum or amsgrad, which no algorithm here uses), step for step, in a few in-place tensor
operations. At these sizes ``torch.optim``'s per-step wrappers cost more than the arithmetic, and
its first constructor imports ``torch._dynamo``, a large part of a short run's start-up
(benchmarks/results/speed/). ``lr`` is an attribute: schedules set it before a step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _tensor_state(state: dict) -> dict:
    """A checkpoint's optimiser state: this module's, or ``torch.optim``'s for one parameter
    (``{"state": {0: {...}}, "param_groups": [...]}``, written by earlier versions of rlrun)."""
    if "param_groups" not in state:
        return state
    return state["state"].get(0, {})


class Adam:
    """Adam (Kingma & Ba 2015, Alg. 1) with bias correction:

        m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2
        theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(self, params: Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.exp_avg = torch.zeros_like(params, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(params, memory_format=torch.preserve_format)
        self.steps = 0

    @torch.no_grad()
    def step(self) -> None:
        """One step along ``params.grad``."""
        beta1, beta2 = self.betas
        grad = self.params.grad
        self.steps += 1
        self.exp_avg.lerp_(grad, 1.0 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        bias_correction1 = 1.0 - beta1 ** self.steps
        bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** self.steps)
        denom = self.exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(self.eps)
        self.params.addcdiv_(self.exp_avg, denom, value=-self.lr / bias_correction1)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone()}

    def load_state_dict(self, state: dict) -> None:
        state = _tensor_state(state)  # empty: torch.optim's state before its first step
        self.steps = int(state.get("steps", state.get("step", 0)))
        self.exp_avg.copy_(state.get("exp_avg", torch.zeros(())))
        self.exp_avg_sq.copy_(state.get("exp_avg_sq", torch.zeros(())))


class RMSprop:
    """RMSprop (Tieleman & Hinton 2012) as torch and Baselines' A2C define it (eps outside the root):

        v <- alpha v + (1 - alpha) g^2,   theta <- theta - lr * g / (sqrt(v) + eps)
    """

    def __init__(self, params: Tensor, lr: float, alpha: float = 0.99, eps: float = 1e-8):
        self.params, self.lr, self.alpha, self.eps = params, lr, alpha, eps
        self.square_avg = torch.zeros_like(params, memory_format=torch.preserve_format)
        self.steps = 0

    @torch.no_grad()
    def step(self) -> None:
        grad = self.params.grad
        self.steps += 1
        self.square_avg.mul_(self.alpha).addcmul_(grad, grad, value=1.0 - self.alpha)
        self.params.addcdiv_(grad, self.square_avg.sqrt().add_(self.eps), value=-self.lr)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "square_avg": self.square_avg.clone()}

    def load_state_dict(self, state: dict) -> None:
        state = _tensor_state(state)
        self.steps = int(state.get("steps", state.get("step", 0)))
        self.square_avg.copy_(state.get("square_avg", torch.zeros(())))
