"""Natural-gradient maths of TRPO (Alg 5.22; Schulman et al. 2015, appendix C).

Pure functions over flat parameter vectors: the Fisher-vector product by double backprop of the
mean KL, conjugate gradient (eq. 5.32), the trust-region step scale and the backtracking line
search (eq. 5.33). The seeds of a batched sweep solve and search together: conjugate gradient
over the rows of an [S, P] matrix, each seed stopping on its own residual, and a line search
whose every round tries the next candidate of all seeds still searching in one evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters


def flat_params(params: Sequence[Tensor]) -> Tensor:
    """All parameters concatenated into one detached vector (a copy, safe to keep)."""
    return parameters_to_vector(params).detach().clone()


def set_flat_params(params: Sequence[Tensor], flat: Tensor) -> None:
    """Copy the vector ``flat`` into the parameters, in place and outside autograd."""
    with torch.no_grad():
        vector_to_parameters(flat, params)


def flat_grad(output: Tensor, params: Sequence[Tensor], *, create_graph: bool = False,
              retain_graph: bool | None = None) -> Tensor:
    """d output / d params as one vector; zeros for parameters ``output`` does not depend on.

    Args:
        output: a scalar tensor.
        params: the parameters to differentiate with respect to.
        create_graph: keep the graph of the gradient itself (for double backprop).
        retain_graph: keep the graph of ``output`` (defaults to ``create_graph``, as in autograd).
    """
    grads = torch.autograd.grad(output, params, create_graph=create_graph, retain_graph=retain_graph,
                                allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)])


def make_fisher_vector_product(mean_kl: Tensor, params: Sequence[Tensor], damping: float) -> Callable[[Tensor], Tensor]:
    """The closure v -> (H + damping I) v, H the Hessian of the mean KL(pi_old || pi_theta).

    H v = d/dtheta [ (d mean_KL / dtheta) . v ] (Schulman et al. 2015, appendix C). The first
    gradient is taken once here, with a graph; each product is one more backward through it, so
    the closure can be called many times (once per CG iteration). At theta = theta_old, H is the
    Fisher information matrix E[grad log pi grad log pi^T] (the chapter's note 5.3), so H^-1 g is
    the natural gradient of eq. 5.32.

    Args:
        mean_kl: scalar mean over the batch of KL(pi_old || pi_theta), pi_old detached.
        params: the actor's parameters (the trust region touches only these).
        damping: Tikhonov term added to H (``cg_damping``), keeps the system well conditioned.
    """
    grad_kl = flat_grad(mean_kl, params, create_graph=True)

    def fisher_vector_product(v: Tensor) -> Tensor:
        return flat_grad(grad_kl @ v, params, retain_graph=True) + damping * v

    return fisher_vector_product


@dataclass(frozen=True)
class CGResult:
    x: Tensor  # the approximate solution of A x = b
    iterations: int  # CG iterations run
    residual: float  # ||b - A x|| at exit, i.e. sqrt(r.r)


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, max_iters: int, tol: float = 1e-10) -> CGResult:
    """Solve A x = b for a symmetric positive-definite A known only through products A v.

    Used for x ~= H^-1 g (eq. 5.32). Starts from x = 0 and stops after ``max_iters`` iterations
    (``cg_iters``) or once the squared residual r.r falls below ``tol`` (``cg_tol``).
    """
    x = torch.zeros_like(b)
    r = b.clone()  # residual b - A x with x = 0
    p = r.clone()
    rr = float(r @ r)
    iterations = 0
    while iterations < max_iters and rr >= tol:
        Ap = matvec(p)
        alpha = rr / float(p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
        iterations += 1
    return CGResult(x=x, iterations=iterations, residual=math.sqrt(rr))


@dataclass(frozen=True)
class SeedsCGResult:
    x: Tensor  # [S, P]: each seed's approximate solution, a row
    iterations: list[int]  # each seed's iterations run
    residuals: list[float]  # each seed's ||b - A x|| at exit


def conjugate_gradient_seeds(matvec: Callable[[Tensor], Tensor], b: Tensor, max_iters: int,
                             tol: float = 1e-10) -> SeedsCGResult:
    """:func:`conjugate_gradient` for S systems at once, A_s x_s = b_s with b [S, P] and ``matvec``
    mapping [S, P] to each row's product. A seed stops once its own r.r falls below ``tol``: its
    row is then held (alpha 0, its direction kept) while the others go on, so each row follows its
    solo iteration; the loop ends when every seed has stopped or ``max_iters`` were run."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = (r * r).sum(-1)
    active = rr >= tol  # the seeds still iterating
    iterations = torch.zeros(len(b), dtype=torch.long)
    for _ in range(max_iters):
        if not active.any():
            break
        Ap = matvec(p)
        alpha = torch.where(active, rr / (p * Ap).sum(-1), 0.0).unsqueeze(-1)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = (r * r).sum(-1)
        p = torch.where(active.unsqueeze(-1), r + (rr_new / rr).unsqueeze(-1) * p, p)
        rr = torch.where(active, rr_new, rr)
        iterations += active.long()
        active &= rr >= tol
    return SeedsCGResult(x=x, iterations=iterations.tolist(), residuals=rr.sqrt().tolist())


@dataclass(frozen=True)
class StepScale:
    scale: float  # min(max_scale, sqrt(2 max_kl / x^T H x)); 0.0 when invalid
    xHx: float  # x^T H x (Delta^T F Delta) as given
    valid: bool  # whether x^T H x was positive and finite
    clipped: bool = False  # whether max_scale, not the KL bound, set the scale


def trust_region_scale(xHx: float, max_kl: float, max_scale: float = math.inf) -> StepScale:
    """beta = min(max_scale, sqrt(2 delta / x^T H x)): the step beta x has quadratic KL model
    (beta x)^T H (beta x) / 2 = delta unless ``max_scale`` binds. TRPO's eq. 5.33 (no
    ``max_scale``) and ACKTR's eta = min(eta_max, sqrt(2 delta / Delta^T F Delta)) (Wu et al. 2017,
    sec. 3.1) alike.

    If x^T H x is not positive and finite (a zero direction, a broken curvature estimate), no
    step can be taken: ``valid`` is False and ``scale`` is 0.0, and the caller skips the update
    (and reports it).
    """
    if not (math.isfinite(xHx) and xHx > 0.0):
        return StepScale(scale=0.0, xHx=xHx, valid=False)
    beta = math.sqrt(2.0 * max_kl / xHx)
    if beta > max_scale:
        return StepScale(scale=max_scale, xHx=xHx, valid=True, clipped=True)
    return StepScale(scale=beta, xHx=xHx, valid=True)


@dataclass(frozen=True)
class LineSearchResult:
    accepted: bool  # whether some j passed; if not, theta_old was restored
    backtracks: int  # the accepted j; max_backtracks + 1 (the number of tries) when rejected
    kl: float  # mean KL at the accepted parameters; 0.0 when rejected (theta_old kept)
    improvement: float  # surrogate(new) - surrogate(old) > 0; 0.0 when rejected
    step_fraction: float  # backtrack_coef ** j; 0.0 when rejected


def backtracking_line_search(params: Sequence[Tensor], full_step: Tensor, evaluate: Callable[[], tuple[float, float]],
                             max_kl: float, backtrack_coef: float, max_backtracks: int,
                             require_improvement: bool = True) -> LineSearchResult:
    """Alg 5.22 step 5 (eq. 5.33): theta = theta_old + alpha^j * full_step for the smallest j in
    {0..K} whose surrogate strictly improves and whose mean KL <= delta.

    With ``require_improvement=False`` only the KL bound is checked (ACKTR's trust-region check:
    its step comes from the K-FAC model, and only the bound is the paper's constraint).

    Args:
        params: the actor's parameters, moved in place; on exit they hold the accepted step or,
            when no j passed, exactly theta_old.
        full_step: beta * x, the full natural-gradient step (eq. 5.33).
        evaluate: returns (surrogate, mean KL(pi_old || pi_theta)) at the parameters' current
            values, without grad. The surrogate is maximised. Candidates where either is
            non-finite are rejected.
        max_kl: the KL bound delta.
        backtrack_coef: alpha in (0, 1).
        max_backtracks: K (``backtrack_iters``); K + 1 candidates are tried.
    """
    theta_old = flat_params(params)
    surrogate_old = evaluate()[0] if require_improvement else 0.0  # unused otherwise: no pass at theta_old
    for j in range(max_backtracks + 1):
        fraction = backtrack_coef**j
        set_flat_params(params, theta_old + fraction * full_step)
        surrogate, kl = evaluate()
        improvement = surrogate - surrogate_old
        improved = improvement > 0.0 or not require_improvement
        if math.isfinite(surrogate) and math.isfinite(kl) and improved and kl <= max_kl:
            return LineSearchResult(accepted=True, backtracks=j, kl=kl, improvement=improvement, step_fraction=fraction)
    set_flat_params(params, theta_old)
    return LineSearchResult(accepted=False, backtracks=max_backtracks + 1, kl=0.0, improvement=0.0, step_fraction=0.0)


def backtracking_line_search_seeds(vector: Tensor, full_steps: Tensor, searching: Sequence[bool],
                                   evaluate: Callable[[], tuple[list[float], list[float]]], max_kl: float,
                                   backtrack_coef: float, max_backtracks: int,
                                   require_improvement: bool = True) -> list[LineSearchResult | None]:
    """:func:`backtracking_line_search` for S seeds whose parameters are the rows of ``vector``
    ([S, P], moved in place): round j sets every seed still searching to theta_old + alpha^j *
    full_step and one ``evaluate()`` gives every seed's (surrogate, mean KL) as two lists; a seed
    takes its first candidate that improves its surrogate within ``max_kl`` (with
    ``require_improvement=False``, its first within ``max_kl``: ACKTR's check). The seeds not
    ``searching`` (no valid step) keep their parameters and get None; a seed with no passing j
    gets theta_old back and a rejected result."""
    theta_old = vector.detach().clone()
    surrogate_old = evaluate()[0] if require_improvement else [0.0] * len(searching)  # unused otherwise
    results: list[LineSearchResult | None] = [None] * len(searching)
    pending = [s for s, search in enumerate(searching) if search]
    for j in range(max_backtracks + 1):
        if not pending:
            break
        fraction = backtrack_coef**j
        rows = torch.tensor(pending)
        with torch.no_grad():
            vector[rows] = theta_old[rows] + fraction * full_steps[rows]
        surrogates, kls = evaluate()
        for s in pending:
            improvement = surrogates[s] - surrogate_old[s]
            improved = improvement > 0.0 or not require_improvement
            if math.isfinite(surrogates[s]) and math.isfinite(kls[s]) and improved and kls[s] <= max_kl:
                results[s] = LineSearchResult(accepted=True, backtracks=j, kl=kls[s], improvement=improvement,
                                              step_fraction=fraction)
        pending = [s for s in pending if results[s] is None]
    if pending:
        rows = torch.tensor(pending)
        with torch.no_grad():
            vector[rows] = theta_old[rows]
        for s in pending:
            results[s] = LineSearchResult(accepted=False, backtracks=max_backtracks + 1, kl=0.0, improvement=0.0,
                                          step_fraction=0.0)
    return results
