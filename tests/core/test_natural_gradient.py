"""Natural-gradient maths (Alg 5.22) against dense and brute-force references, in float64."""

import math

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal, kl_divergence
from torch.func import functional_call, grad, vmap

from rlrun.core.natural_gradient import (backtracking_line_search, backtracking_line_search_seeds, conjugate_gradient,
                                         conjugate_gradient_seeds, flat_grad, flat_params, make_fisher_vector_product,
                                         set_flat_params, trust_region_scale)

DTYPE = torch.float64
OBS_DIM, HIDDEN = 3, 4


class TinyPolicy(nn.Module):
    """Linear-Tanh-Linear; Categorical logits, or a diagonal Gaussian with a state-independent log-std."""

    def __init__(self, head: str, action_dim: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.head = head
        self.body = nn.Sequential(nn.Linear(OBS_DIM, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, action_dim))
        if head == "gaussian":
            self.log_std = nn.Parameter(-0.3 + 0.2 * torch.randn(action_dim))
        self.to(DTYPE)

    def forward(self, obs: Tensor) -> Distribution:
        out = self.body(obs)
        # no argument validation, as in training: NaN parameters must reach the line search's check
        if self.head == "categorical":
            return Categorical(logits=out, validate_args=False)
        return Independent(Normal(out, self.log_std.exp(), validate_args=False), 1, validate_args=False)


def unflatten(policy: nn.Module, theta: Tensor) -> dict[str, Tensor]:
    names = [name for name, _ in policy.named_parameters()]
    sizes = [p.numel() for p in policy.parameters()]
    shapes = [p.shape for p in policy.parameters()]
    return {name: chunk.view(shape) for name, chunk, shape in zip(names, theta.split(sizes), shapes)}


def dist_at(policy: nn.Module, theta: Tensor, obs: Tensor) -> Distribution:
    return functional_call(policy, unflatten(policy, theta), (obs,))


def kl_hessian(policy: nn.Module, pi_old: Distribution, obs: Tensor) -> Tensor:
    """Dense Hessian of mean KL(pi_old || pi_theta) at the policy's current parameters."""
    mean_kl = lambda theta: kl_divergence(pi_old, dist_at(policy, theta, obs)).mean()  # noqa: E731
    return torch.autograd.functional.hessian(mean_kl, flat_params(policy.parameters()))


def random_spd(n: int, generator: torch.Generator) -> Tensor:
    m = torch.randn(n, n, generator=generator, dtype=DTYPE)
    return m @ m.T / n + 0.1 * torch.eye(n, dtype=DTYPE)


HEADS = [("categorical", 3), ("gaussian", 2)]


# ---------------------------------------------------------------- flat-parameter helpers

def test_flat_params_round_trip_and_copy():
    policy = TinyPolicy("gaussian", 2, seed=0)
    params = list(policy.parameters())
    theta = flat_params(params)
    assert theta.shape == (sum(p.numel() for p in params),) and not theta.requires_grad
    set_flat_params(params, torch.zeros_like(theta))
    assert all(torch.all(p == 0) for p in params)
    assert theta.abs().sum() > 0  # a copy, not a view
    set_flat_params(params, theta)
    assert torch.equal(flat_params(params), theta)


def test_flat_grad_matches_autograd_with_zeros_for_unused():
    a = torch.randn(2, 3, dtype=DTYPE, requires_grad=True)
    unused = torch.randn(4, dtype=DTYPE, requires_grad=True)
    g = flat_grad((a**2).sum(), [a, unused])
    torch.testing.assert_close(g, torch.cat([2 * a.detach().reshape(-1), torch.zeros(4, dtype=DTYPE)]))


# ---------------------------------------------------------------- conjugate gradient (eq. 5.32)

@pytest.mark.parametrize("n", [5, 10, 20, 30])
def test_conjugate_gradient_matches_dense_solve(n):
    generator = torch.Generator().manual_seed(n)
    for _ in range(3):
        A = random_spd(n, generator)
        b = torch.randn(n, generator=generator, dtype=DTYPE)
        # n steps solve it in exact arithmetic; in float64 the search directions lose their
        # A-orthogonality and the last digits need a few more (how many depends on the BLAS's rounding)
        result = conjugate_gradient(lambda v: A @ v, b, max_iters=2 * n, tol=1e-20)
        expected = torch.linalg.solve(A, b)
        assert (result.x - expected).norm() / expected.norm() < 1e-9
        assert 1 <= result.iterations <= 2 * n
        assert result.residual == pytest.approx((b - A @ result.x).norm().item(), abs=1e-9)
        assert result.residual < 1e-5 * b.norm()


def test_conjugate_gradient_fewer_iterations_leave_a_larger_residual():
    generator = torch.Generator().manual_seed(1)
    A, b = random_spd(20, generator), torch.randn(20, generator=generator, dtype=DTYPE)
    short = conjugate_gradient(lambda v: A @ v, b, max_iters=3, tol=1e-20)
    full = conjugate_gradient(lambda v: A @ v, b, max_iters=20, tol=1e-20)
    assert short.iterations == 3
    assert short.residual == pytest.approx((b - A @ short.x).norm().item(), rel=1e-9)
    assert short.residual > 1e3 * full.residual


def test_conjugate_gradient_stops_at_tolerance():
    b = torch.tensor([1.0, -2.0, 3.0], dtype=DTYPE)
    result = conjugate_gradient(lambda v: 2.0 * v, b, max_iters=10, tol=1e-10)
    assert result.iterations == 1  # exact after one step for a multiple of the identity
    torch.testing.assert_close(result.x, b / 2)
    assert result.residual < 1e-12


def test_conjugate_gradient_seeds_follows_each_seeds_own_iteration():
    """S systems at once, each row as its solo CG (same iterations, solution and residual): one
    solved exactly in one step (a multiple of I), one with b = 0 (no iteration), the others stopping
    at the tolerance or at max_iters."""
    generator = torch.Generator().manual_seed(3)
    n = 12
    matrices = [random_spd(n, generator), 2.0 * torch.eye(n, dtype=DTYPE), random_spd(n, generator),
                torch.eye(n, dtype=DTYPE) + torch.diag(torch.linspace(0, 100, n, dtype=DTYPE))]
    A = torch.stack(matrices)
    b = torch.randn(len(matrices), n, generator=generator, dtype=DTYPE)
    b[2] = 0.0
    for max_iters, tol in [(2 * n, 1e-20), (5, 1e-20), (2 * n, 1e-6)]:
        together = conjugate_gradient_seeds(lambda v: torch.einsum("sij,sj->si", A, v), b, max_iters, tol)
        for s, matrix in enumerate(matrices):
            alone = conjugate_gradient(lambda v: matrix @ v, b[s], max_iters, tol)
            assert together.iterations[s] == alone.iterations
            torch.testing.assert_close(together.x[s], alone.x, rtol=1e-10, atol=1e-12)
            assert together.residuals[s] == pytest.approx(alone.residual, rel=1e-8, abs=1e-9)  # at 2n: rounding noise
        assert together.iterations[1] == 1 and together.iterations[2] == 0
        assert len(set(together.iterations)) > 2


# ---------------------------------------------------------------- Fisher-vector product

@pytest.mark.parametrize("head, action_dim", HEADS)
@pytest.mark.parametrize("at_old", [True, False], ids=["theta_old", "moved"])
def test_fisher_vector_product_equals_dense_hessian(head, action_dim, at_old):
    policy = TinyPolicy(head, action_dim, seed=1)
    params = list(policy.parameters())
    obs = torch.randn(16, OBS_DIM, dtype=DTYPE, generator=torch.Generator().manual_seed(2))
    theta = flat_params(params)
    # pi_old at theta itself (TRPO's case), or at another point: the product is the Hessian either way
    theta_old = theta if at_old else theta + 0.3 * torch.randn(theta.shape, dtype=DTYPE)
    with torch.no_grad():
        pi_old = dist_at(policy, theta_old, obs)
    damping = 0.1
    fvp = make_fisher_vector_product(kl_divergence(pi_old, policy(obs)).mean(), params, damping)
    H = kl_hessian(policy, pi_old, obs)
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):  # the closure is reusable
        v = torch.randn(theta.shape, dtype=DTYPE, generator=generator)
        torch.testing.assert_close(fvp(v), H @ v + damping * v, rtol=0, atol=1e-8)


def monte_carlo_fisher(policy: nn.Module, obs: Tensor, samples_per_state: int, seed: int) -> Tensor:
    """E_s E_{a~pi}[grad log pi grad log pi^T] with per-sample scores by vmap (note 5.3)."""
    theta = flat_params(policy.parameters())
    torch.manual_seed(seed)
    with torch.no_grad():
        actions = policy(obs).sample((samples_per_state,))  # (M, S, ...) sampled from pi, not a replay
    states = obs.expand(samples_per_state, *obs.shape).reshape(-1, OBS_DIM)
    actions = actions.reshape(states.shape[0], *actions.shape[2:])
    log_prob = lambda th, s, a: dist_at(policy, th, s.unsqueeze(0)).log_prob(a.unsqueeze(0)).squeeze(0)  # noqa: E731
    scores = vmap(grad(log_prob), in_dims=(None, 0, 0))(theta, states, actions)
    return scores.T @ scores / scores.shape[0]


@pytest.mark.parametrize("head, action_dim", HEADS)
def test_kl_hessian_equals_monte_carlo_fisher(head, action_dim):
    policy = TinyPolicy(head, action_dim, seed=4)
    obs = torch.randn(8, OBS_DIM, dtype=DTYPE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        pi_old = policy(obs)
    H = kl_hessian(policy, pi_old, obs)
    F = monte_carlo_fisher(policy, obs, samples_per_state=5000, seed=6)
    # 40k samples: each entry of F is a mean of 40k products of scores with O(1) relative spread
    # (Gaussian scores have kurtosis 3), so the relative error is ~ few / sqrt(40k) ~ 0.01-0.02.
    # 0.05 leaves room for that, while a wrong matrix (2H, or H at another point) is off by >= 0.5.
    relative_error = lambda A, B: ((A - B).norm() / B.norm()).item()  # noqa: E731
    assert relative_error(F, H) < 0.05
    assert relative_error(F, 2 * H) > 0.4


# ---------------------------------------------------------------- step scale (eq. 5.33)

def test_step_scale_puts_the_quadratic_kl_on_the_bound():
    generator = torch.Generator().manual_seed(7)
    H = random_spd(6, generator)
    for max_kl in (1e-3, 0.01, 0.5):
        x = torch.randn(6, dtype=DTYPE, generator=generator)
        step = trust_region_scale(float(x @ H @ x), max_kl)
        assert step.valid
        assert step.xHx == pytest.approx((x @ H @ x).item())
        assert step.scale**2 * step.xHx / 2 == pytest.approx(max_kl, rel=1e-12)


@pytest.mark.parametrize("xHx", [0.0, -1.0, math.nan, math.inf])
def test_step_scale_invalid_when_xHx_not_positive_and_finite(xHx):
    step = trust_region_scale(xHx, 0.01)
    assert not step.valid and step.scale == 0.0


# ---------------------------------------------------------------- line search (Alg 5.22 step 5)

def scripted(values: list[tuple[float, float]]):
    """evaluate() returning the given (surrogate, kl) pairs in order, counting its calls."""
    calls = []

    def evaluate() -> tuple[float, float]:
        calls.append(None)
        return values[len(calls) - 1]

    return evaluate, calls


def test_line_search_synthetic_accepts_first_passing_candidate():
    param = torch.zeros(2, dtype=DTYPE)
    full_step = torch.tensor([1.0, -2.0], dtype=DTYPE)
    evaluate, calls = scripted([
        (1.0, 0.0),  # at theta_old
        (2.0, 0.02),  # j=0: KL above the bound
        (0.9, 0.001),  # j=1: surrogate worse
        (1.0, 0.001),  # j=2: not a strict improvement
        (math.inf, 0.0),  # j=3: non-finite surrogate
        (1.5, math.nan),  # j=4: non-finite KL
        (1.25, 0.01),  # j=5: passes (KL exactly on the bound)
        (3.0, 0.0),  # never evaluated
    ])
    result = backtracking_line_search([param], full_step, evaluate, max_kl=0.01, backtrack_coef=0.5,
                                      max_backtracks=10)
    assert result.accepted and result.backtracks == 5 and len(calls) == 7
    assert result.kl == 0.01 and result.improvement == 0.25 and result.step_fraction == 0.5**5
    torch.testing.assert_close(param, 0.5**5 * full_step)


def test_line_search_without_improvement_checks_only_the_kl_bound():
    """ACKTR's trust-region check: a worse surrogate is accepted, a KL above the bound is not; and
    nothing is evaluated at theta_old, whose surrogate nothing is compared with (a CNN pass saved)."""
    param = torch.zeros(2, dtype=DTYPE)
    full_step = torch.tensor([1.0, -2.0], dtype=DTYPE)
    evaluate, calls = scripted([
        (0.0, 0.03),  # j=0: KL above the bound
        (0.0, math.nan),  # j=1: non-finite KL
        (-1.0, 0.009),  # j=2: worse surrogate, KL inside: accepted
    ])
    seen = []
    result = backtracking_line_search([param], full_step, lambda: (seen.append(param.clone()), evaluate())[1],
                                      max_kl=0.01, backtrack_coef=0.5, max_backtracks=10, require_improvement=False)
    assert result.accepted and result.backtracks == 2 and len(calls) == 3 and result.kl == 0.009
    for fraction, at in zip([1.0, 0.5, 0.25], seen):  # only the candidates
        torch.testing.assert_close(at, fraction * full_step)
    torch.testing.assert_close(param, 0.25 * full_step)


def test_line_search_synthetic_rejection_restores_parameters():
    param = torch.tensor([0.1, 0.2, 0.3], dtype=DTYPE)
    before = param.clone()
    evaluate, calls = scripted([(1.0, 0.0)] + [(0.5, 0.0)] * 4)
    result = backtracking_line_search([param], torch.ones(3, dtype=DTYPE), evaluate, max_kl=0.01,
                                      backtrack_coef=0.5, max_backtracks=3)
    assert not result.accepted and result.backtracks == 4 and len(calls) == 5
    assert (result.kl, result.improvement, result.step_fraction) == (0.0, 0.0, 0.0)
    assert torch.equal(param, before)


def test_line_search_seeds_gives_each_seed_its_solo_search():
    """Each row on its own landscape (surrogate a.theta - |theta|^2 / 2, KL k |theta - theta_old|^2):
    every seed's result and parameters as its solo line search's, bit for bit; a seed with no
    valid step (not searching) untouched, a descending seed rejected and restored, a NaN seed
    rejected; one evaluation a round for all seeds."""
    theta_old = torch.tensor([[0.1, 0.2], [0.0, -0.3], [0.5, 0.5], [0.2, 0.1], [-0.1, 0.4]], dtype=DTYPE)
    steps = torch.tensor([[1.0, 1.0], [0.4, -0.8], [1.0, 0.0], [-1.0, -1.0], [math.nan, 0.0]], dtype=DTYPE)
    a = torch.tensor([[2.0, 2.0], [1.0, -2.0], [3.0, 0.0], [1.0, 1.0], [1.0, 1.0]], dtype=DTYPE)
    k = torch.tensor([0.5, 0.05, 0.001, 0.5, 0.5], dtype=DTYPE)
    searching = [True, True, False, True, True]

    def surrogate(theta: Tensor, s: int) -> float:
        return float(a[s] @ theta - 0.5 * theta @ theta)

    def kl(theta: Tensor, s: int) -> float:
        return float(k[s] * (theta - theta_old[s]).pow(2).sum())

    vector, rounds = theta_old.clone(), []

    def evaluate() -> tuple[list[float], list[float]]:
        rounds.append(None)
        return [surrogate(row, s) for s, row in enumerate(vector)], [kl(row, s) for s, row in enumerate(vector)]

    results = backtracking_line_search_seeds(vector, steps, searching, evaluate, max_kl=0.01, backtrack_coef=0.5,
                                             max_backtracks=6)
    assert results[2] is None and torch.equal(vector[2], theta_old[2])
    for s in (0, 1, 3, 4):
        param = theta_old[s].clone()
        alone = backtracking_line_search([param], steps[s], lambda: (surrogate(param, s), kl(param, s)), max_kl=0.01,
                                         backtrack_coef=0.5, max_backtracks=6)
        assert results[s] == alone
        assert torch.equal(vector[s], param)
    assert [r.accepted for r in results if r is not None] == [True, True, False, False]
    assert results[0].backtracks != results[1].backtracks
    assert len(rounds) == 1 + 7  # theta_old, then rounds until the last seed stopped (the rejected ones: all 7)


class SurrogateProblem:
    """A tiny policy with a batch, its surrogate mean[pi/pi_old * A] and the natural-gradient direction."""

    def __init__(self, head: str, action_dim: int):
        self.policy = TinyPolicy(head, action_dim, seed=8)
        self.params = list(self.policy.parameters())
        generator = torch.Generator().manual_seed(9)
        self.obs = torch.randn(32, OBS_DIM, dtype=DTYPE, generator=generator)
        self.advantages = torch.randn(32, dtype=DTYPE, generator=generator)
        with torch.no_grad():
            self.pi_old = self.policy(self.obs)
            self.actions = self.pi_old.sample()
            self.log_prob_old = self.pi_old.log_prob(self.actions)
        pi = self.policy(self.obs)
        g = flat_grad(self.surrogate(pi), self.params, retain_graph=True)  # pi is reused by the KL
        fvp = make_fisher_vector_product(kl_divergence(self.pi_old, pi).mean(), self.params, damping=0.1)
        self.direction = conjugate_gradient(fvp, g, max_iters=10).x
        self.hx = fvp(self.direction)

    def surrogate(self, pi: Distribution) -> Tensor:
        return ((pi.log_prob(self.actions) - self.log_prob_old).exp() * self.advantages).mean()

    def evaluate(self) -> tuple[float, float]:
        with torch.no_grad():
            pi = self.policy(self.obs)
            return self.surrogate(pi).item(), kl_divergence(self.pi_old, pi).mean().item()


@pytest.mark.parametrize("head, action_dim", HEADS)
def test_line_search_on_policy_respects_bounds_and_backtracks_more_as_max_kl_shrinks(head, action_dim):
    problem = SurrogateProblem(head, action_dim)
    theta_old = flat_params(problem.params)
    surrogate_old, _ = problem.evaluate()
    full_step = trust_region_scale(float(problem.direction @ problem.hx), 1.0).scale * problem.direction
    coef, max_backtracks = 0.5, 30
    accepted_j = []
    for max_kl in (1.0, 0.1, 0.01, 1e-3):
        set_flat_params(problem.params, theta_old)
        result = backtracking_line_search(problem.params, full_step, problem.evaluate, max_kl, coef, max_backtracks)
        assert result.accepted
        surrogate, kl = problem.evaluate()  # the parameters left in place are the accepted step
        assert kl <= max_kl and surrogate > surrogate_old
        assert (result.kl, result.improvement) == pytest.approx((kl, surrogate - surrogate_old))
        torch.testing.assert_close(flat_params(problem.params), theta_old + coef**result.backtracks * full_step)
        for j in range(result.backtracks):  # brute force: every smaller j fails a condition
            set_flat_params(problem.params, theta_old + coef**j * full_step)
            surrogate, kl = problem.evaluate()
            assert kl > max_kl or not surrogate > surrogate_old
        accepted_j.append(result.backtracks)
    assert accepted_j == sorted(accepted_j) and accepted_j[-1] > accepted_j[0]


@pytest.mark.parametrize("head, action_dim", HEADS)
def test_line_search_on_policy_rejects_descent_and_restores_bit_exactly(head, action_dim):
    problem = SurrogateProblem(head, action_dim)
    before = [p.detach().clone() for p in problem.params]
    full_step = -trust_region_scale(float(problem.direction @ problem.hx), 0.01).scale * problem.direction
    result = backtracking_line_search(problem.params, full_step, problem.evaluate, 0.01, 0.8, 10)
    assert not result.accepted and result.backtracks == 11
    assert all(torch.equal(p, b) for p, b in zip(problem.params, before))


def test_line_search_on_policy_rejects_nan_candidates():
    problem = SurrogateProblem("categorical", 3)
    theta_old = flat_params(problem.params)
    full_step = trust_region_scale(float(problem.direction @ problem.hx), 0.01).scale * problem.direction
    calls = []

    def nan_on_first_candidate() -> tuple[float, float]:
        calls.append(None)
        surrogate, kl = problem.evaluate()
        return (math.nan if len(calls) == 2 else surrogate), kl

    result = backtracking_line_search(problem.params, full_step, nan_on_first_candidate, 1.0, 0.5, 10)
    assert result.accepted and result.backtracks == 1  # j=0 would pass (max_kl=1) were it not NaN

    set_flat_params(problem.params, theta_old)
    before = [p.detach().clone() for p in problem.params]
    nan_step = torch.full_like(full_step, math.nan)  # every candidate's surrogate and KL are NaN
    result = backtracking_line_search(problem.params, nan_step, problem.evaluate, 1.0, 0.5, 5)
    assert not result.accepted
    assert all(torch.equal(p, b) for p, b in zip(problem.params, before))
