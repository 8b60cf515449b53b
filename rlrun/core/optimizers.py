"""Adam and RMSprop on one flat parameter vector (:class:`rlrun.core.flat_params.FlatParameters`).

The same arithmetic as ``torch.optim.Adam`` and ``torch.optim.RMSprop`` (without weight decay,
momentum or amsgrad, which no algorithm here uses), step for step, in a few in-place tensor
operations. At these sizes ``torch.optim``'s per-step wrappers cost more than the arithmetic, and
its first constructor imports ``torch._dynamo``, a large part of a short run's start-up
(benchmarks/results/speed/). ``lr`` is an attribute: schedules set it before a step.

Adam also steps the seeds of a stacked [S, P] vector (``FlatParameters.stacked``), each row as the
same Adam of that seed alone would, with a step count per row: ``step(rows)`` moves only the rows
(seeds) asked, so a seed that stopped its epochs early keeps its parameters and moments.
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
        self._denom = torch.empty_like(params)  # a step's sqrt(v) / sqrt(1 - beta2^t) + eps, made in place
        # steps taken: one count, or one per row of a stacked [S, P] vector
        self.steps: int | Tensor = 0 if params.dim() == 1 else torch.zeros(params.shape[0], dtype=torch.long,
                                                                             device=params.device)

    @torch.no_grad()
    def step(self, rows: Tensor | None = None) -> None:
        """One step along ``params.grad``; of a stacked vector, of the rows where the bool [S]
        ``rows`` is true (default: all)."""
        if self.params.dim() == 1:
            self.steps += 1
            self._step_all(self.steps)
            return
        every_row = rows is None or bool(rows.all())
        if every_row and bool((self.steps == self.steps[0]).all()):  # the seeds' counts alike: one count for all
            self.steps += 1
            self._step_all(int(self.steps[0]))
            return
        self._step_rows(None if every_row else rows.to(self.params.device))

    def _step_all(self, step: int) -> None:
        """The step of every element, whose count is ``step`` (a stacked vector's rows: each as alone)."""
        beta1, beta2 = self.betas
        grad = self.params.grad
        self.exp_avg.lerp_(grad, 1.0 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        bias_correction1 = 1.0 - beta1 ** step
        bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** step)
        denom = torch.sqrt(self.exp_avg_sq, out=self._denom).div_(bias_correction2_sqrt).add_(self.eps)
        self.params.addcdiv_(self.exp_avg, denom, value=-self.lr / bias_correction1)

    def _step_rows(self, rows: Tensor | None) -> None:
        """The same arithmetic on each row in ``rows`` (None: all), with that row's step count (the
        counts differ once a seed has stopped its epochs early)."""
        beta1, beta2 = self.betas
        grad = self.params.grad
        self.steps += 1 if rows is None else rows
        steps = self.steps.to(torch.float64)[:, None]  # the bias corrections in double, as above
        bias_correction1 = 1.0 - beta1 ** steps
        bias_correction2_sqrt = (1.0 - beta2 ** steps).sqrt()
        # every row stepping: the moments in place, as the unstacked step; else on copies, merged below
        exp_avg, exp_avg_sq = (self.exp_avg, self.exp_avg_sq) if rows is None else (self.exp_avg.clone(),
                                                                                  self.exp_avg_sq.clone())
        exp_avg.lerp_(grad, 1.0 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = exp_avg_sq.sqrt().div_(bias_correction2_sqrt.to(grad.dtype)).add_(self.eps)
        update = exp_avg.mul((-self.lr / bias_correction1).to(grad.dtype)).div_(denom)  # addcdiv_ order
        if rows is None:
            self.params.add_(update)
            return
        keep = ~rows[:, None]
        self.params.add_(update.masked_fill_(keep, 0.0))
        self.exp_avg.copy_(torch.where(keep, self.exp_avg, exp_avg))
        self.exp_avg_sq.copy_(torch.where(keep, self.exp_avg_sq, exp_avg_sq))

    def state_dict(self, row: int | None = None) -> dict:
        """The state; of a stacked vector, ``row``'s alone, as an unstacked Adam of that seed saves it
        (``row`` is not read for an unstacked one)."""
        if isinstance(self.steps, int):
            return {"steps": self.steps, "exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone()}
        return {"steps": int(self.steps[row]), "exp_avg": self.exp_avg[row].clone(),
                "exp_avg_sq": self.exp_avg_sq[row].clone()}

    def load_state_dict(self, state: dict, row: int | None = None) -> None:
        """An unstacked state (``state_dict()``'s; of a stacked vector, ``state_dict(row)``'s into ``row``)."""
        state = _tensor_state(state)  # empty: torch.optim's state before its first step
        steps = int(state.get("steps", state.get("step", 0)))
        if isinstance(self.steps, int):
            self.steps, exp_avg, exp_avg_sq = steps, self.exp_avg, self.exp_avg_sq
        else:
            self.steps[row], exp_avg, exp_avg_sq = steps, self.exp_avg[row], self.exp_avg_sq[row]
        exp_avg.copy_(state.get("exp_avg", torch.zeros(())))
        exp_avg_sq.copy_(state.get("exp_avg_sq", torch.zeros(())))


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

    def state_dict(self, row: int | None = None) -> dict:
        """The state; of a stacked [S, P] vector (every row steps at every step), ``row``'s alone,
        as an unstacked RMSprop of that seed saves it (``row`` is not read for an unstacked one)."""
        square_avg = self.square_avg if self.params.dim() == 1 else self.square_avg[row]
        return {"steps": self.steps, "square_avg": square_avg.clone()}

    def load_state_dict(self, state: dict, row: int | None = None) -> None:
        state = _tensor_state(state)
        self.steps = int(state.get("steps", state.get("step", 0)))
        square_avg = self.square_avg if self.params.dim() == 1 else self.square_avg[row]
        square_avg.copy_(state.get("square_avg", torch.zeros(())))
