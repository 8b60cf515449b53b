"""K-FAC against dense references: hand-computed factors, torch.kron solves, exact KL."""

import copy

import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from rlrun.core.kfac import KFAC
from rlrun.core.natural_gradient import trust_region_scale

DT = torch.float64


def make_net(sizes, seed):
    torch.manual_seed(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).to(DT)


def capture(kfac, net, obs, seed):
    """Fisher loss from actions SAMPLED from the current policy; returns (logits, actions)."""
    logits = net(obs)
    dist = Categorical(logits=logits)
    actions = _sample(dist, seed)
    with kfac.capture_statistics():
        dist.log_prob(actions).mean().backward()
    net.zero_grad()
    return logits.detach(), actions


def _sample(dist, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(dist.probs.detach(), 1, generator=g).squeeze(-1)


def hand_factors(obs, logits, actions):
    """A = mean a_hom a_hom^T; S = mean g g^T with g = onehot(a) - softmax(logits)."""
    a = torch.cat([obs, torch.ones(obs.shape[0], 1, dtype=DT)], dim=1)
    g = torch.nn.functional.one_hot(actions, logits.shape[-1]).to(DT) - logits.softmax(-1)
    return a.T @ a / a.shape[0], g.T @ g / g.shape[0]


def explicit_direction(A, S, G, damping):
    """(A (x) S + damping I)^-1 vec(G), column-major vec (vec(g a^T) = a (x) g)."""
    out, n_in = G.shape
    vec_g = G.T.reshape(-1)
    F = torch.kron(A, S) + damping * torch.eye(out * n_in, dtype=DT)
    return torch.linalg.solve(F, vec_g).reshape(n_in, out).T


def set_random_objective_grad(net, obs, seed):
    net.zero_grad()
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(obs.shape[0], net[-1].out_features, generator=g, dtype=DT)
    (net(obs) * c).sum().backward()


def layer_grad(layer):
    return torch.cat([layer.weight.grad, layer.bias.grad[:, None]], dim=1)


def test_factors_equal_hand_computed_sampled_fisher():
    net = make_net([3, 4], seed=0)
    kfac = KFAC(net, stat_decay=0.0)
    obs = torch.randn(64, 3, dtype=DT)
    logits, actions = capture(kfac, net, obs, seed=1)
    A, S = hand_factors(obs, logits, actions)
    torch.testing.assert_close(kfac.layers[0].A, A, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kfac.layers[0].S, S, rtol=1e-12, atol=1e-12)


def test_capture_with_autograd_grad_leaves_dot_grad_untouched():
    net = make_net([3, 4], seed=0)
    kfac = KFAC(net, stat_decay=0.0)
    obs = torch.randn(32, 3, dtype=DT)
    logits = net(obs)  # forward outside the context
    dist = Categorical(logits=logits)
    actions = _sample(dist, 2)
    with kfac.capture_statistics():
        torch.autograd.grad(dist.log_prob(actions).mean(), list(net.parameters()))
    assert all(p.grad is None for p in net.parameters())
    A, S = hand_factors(obs, logits.detach(), actions)
    torch.testing.assert_close(kfac.layers[0].S, S, rtol=1e-12, atol=1e-12)
    # outside the context the hooks are no-ops
    net(obs).sum().backward()
    torch.testing.assert_close(kfac.layers[0].A, A, rtol=1e-12, atol=1e-12)


def test_single_layer_matches_explicit_kron_solve():
    net = make_net([3, 4], seed=0)
    damping = 1e-2
    kfac = KFAC(net, stat_decay=0.0, damping=damping, eig_floor=0.0)
    obs = torch.randn(64, 3, dtype=DT)
    capture(kfac, net, obs, seed=1)
    set_random_objective_grad(net, obs, seed=3)
    G = layer_grad(net[0]).clone()
    dW, db = kfac.natural_gradient()
    expected = explicit_direction(kfac.layers[0].A, kfac.layers[0].S, G, damping)
    got = torch.cat([dW, db[:, None]], dim=1)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(layer_grad(net[0]), G)  # .grad is not overwritten
    assert [p is q for p, q in zip(kfac.parameters(), [net[0].weight, net[0].bias])] == [True, True]


def test_kron_inverse_is_kron_of_inverses():
    g = torch.Generator().manual_seed(0)

    def spd(n):
        m = torch.randn(n, n, generator=g, dtype=DT)
        return m @ m.T + n * torch.eye(n, dtype=DT)

    A, S = spd(4), spd(3)
    torch.testing.assert_close(torch.linalg.inv(torch.kron(A, S)),
                               torch.kron(torch.linalg.inv(A), torch.linalg.inv(S)))


def test_two_layer_mlp_is_block_diagonal():
    net = make_net([3, 5, 4], seed=0)
    damping = 3e-2
    kfac = KFAC(net, stat_decay=0.0, damping=damping, eig_floor=0.0)
    obs = torch.randn(128, 3, dtype=DT)
    capture(kfac, net, obs, seed=1)
    set_random_objective_grad(net, obs, seed=4)
    dirs = kfac.natural_gradient()
    assert [d.shape for d in dirs] == [p.shape for p in kfac.parameters()]
    for i, layer in enumerate([net[0], net[2]]):
        A, S = kfac.layers[i].A, kfac.layers[i].S
        expected = explicit_direction(A, S, layer_grad(layer), damping)
        got = torch.cat([dirs[2 * i], dirs[2 * i + 1][:, None]], dim=1)
        torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-10)
    # zeroing layer 2's gradient changes nothing in layer 1's direction (no cross-layer blocks)
    net[2].weight.grad.zero_()
    net[2].bias.grad.zero_()
    dirs2 = kfac.natural_gradient()
    torch.testing.assert_close(dirs2[0], dirs[0])
    torch.testing.assert_close(dirs2[1], dirs[1])
    assert dirs2[2].abs().max() == 0 and dirs2[3].abs().max() == 0


def test_ema_of_two_captures_and_stale_eigendecomposition():
    net = make_net([3, 4], seed=0)
    damping = 1e-2
    kfac = KFAC(net, stat_decay=0.5, damping=damping, inv_every=3, eig_floor=0.0)
    obs1, obs2 = torch.randn(64, 3, dtype=DT), 2.0 * torch.randn(64, 3, dtype=DT)
    A1, S1 = hand_factors(obs1, *capture(kfac, net, obs1, seed=1))
    torch.testing.assert_close(kfac.layers[0].A, A1)  # first update initialises the EMA
    set_random_objective_grad(net, obs1, seed=5)
    G = layer_grad(net[0]).clone()

    def direction():
        dW, db = kfac.natural_gradient()
        return torch.cat([dW, db[:, None]], dim=1)

    torch.testing.assert_close(direction(), explicit_direction(A1, S1, G, damping))  # call 0
    A2, S2 = hand_factors(obs2, *capture(kfac, net, obs2, seed=2))
    set_random_objective_grad(net, obs1, seed=5)
    A_avg, S_avg = 0.5 * (A1 + A2), 0.5 * (S1 + S2)
    torch.testing.assert_close(kfac.layers[0].A, A_avg)
    torch.testing.assert_close(kfac.layers[0].S, S_avg)
    stale = explicit_direction(A1, S1, G, damping)
    fresh = explicit_direction(A_avg, S_avg, G, damping)
    assert (stale - fresh).abs().max() > 1e-3
    torch.testing.assert_close(direction(), stale)  # call 1: stale
    torch.testing.assert_close(direction(), stale)  # call 2: stale
    torch.testing.assert_close(direction(), fresh)  # call 3: refreshed


def kron_quadratic(kfac: KFAC, direction: list[torch.Tensor]) -> float:
    """Delta^T (block-diag of A (x) S) Delta, built densely: the curvature K-FAC's step is scaled by."""
    total = 0.0
    for i, layer in enumerate(kfac.layers):
        D = torch.cat([direction[2 * i], direction[2 * i + 1][:, None]], dim=1)
        vec_d = D.T.reshape(-1)
        total += float(vec_d @ torch.kron(layer.A, layer.S) @ vec_d)
    return total


# One linear layer: K-FAC's only approximation is E[aa^T (x) gg^T] ~= A (x) S, the KL lands near
# max_kl. A 2-layer MLP also drops the cross-layer Fisher blocks (block-diagonal, Martens & Grosse
# 2015 sec. 4.2), which here underestimates the true Fisher quadratic ~2.6x: a looser band.
@pytest.mark.parametrize(("sizes", "band"), [([3, 4], (0.3, 3.0)), ([3, 8, 4], (0.1, 10.0))])
def test_trust_region_step_respects_max_kl(sizes, band):
    net = make_net(sizes, seed=0)
    kfac = KFAC(net, stat_decay=0.0, damping=1e-4)
    obs = torch.randn(4000, 3, dtype=DT, generator=torch.Generator().manual_seed(11))
    logits_old, actions = capture(kfac, net, obs, seed=12)
    adv = torch.randn(obs.shape[0], dtype=DT, generator=torch.Generator().manual_seed(13))
    loss = -(Categorical(logits=net(obs)).log_prob(actions) * adv).mean()
    loss.backward()
    direction = [-d for d in kfac.natural_gradient()]  # ascent on the surrogate
    quadratic = kron_quadratic(kfac, direction)
    max_kl = 1e-4

    def kl_after(eta):
        moved = copy.deepcopy(net)
        with torch.no_grad():
            for p, d in zip(KFAC(moved).parameters(), direction):
                p.add_(eta * d)
            new = Categorical(logits=moved(obs))
        return float(torch.distributions.kl_divergence(Categorical(logits=logits_old), new).mean())

    step = trust_region_scale(quadratic, max_kl, max_scale=1e6)
    eta = step.scale
    assert step.valid and not step.clipped
    assert band[0] * max_kl < kl_after(eta) < band[1] * max_kl
    small = trust_region_scale(quadratic, max_kl, max_scale=0.5 * eta)
    assert small.clipped and small.scale == 0.5 * eta
    eta_small = small.scale
    assert kl_after(eta_small) < kl_after(eta)


def test_trust_region_scale_formula_clipping_and_invalid_curvature():
    assert trust_region_scale(8.0, 1.0, 10.0).scale == 0.5
    clipped = trust_region_scale(8.0, 1.0, 0.1)
    assert clipped.scale == 0.1 and clipped.clipped and clipped.valid
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        step = trust_region_scale(bad, 1e-2, 1.0)  # no step, reported, not raised
        assert step.scale == 0.0 and not step.valid


def test_records_of_another_number_of_layers_are_refused():
    """A written-out pass's records (``update_factors``) must cover every layer, not a prefix of them."""
    net = make_net([3, 5, 4], seed=0)
    kfac = KFAC(net, stat_decay=0.0)
    a, g = torch.randn(32, 3, dtype=DT), torch.randn(32, 5, dtype=DT)
    with pytest.raises(ValueError, match="records of 1 layers for 2 layers"):
        kfac.update_factors([[(a, g)]])


def test_nan_factor_raises_naming_layer():
    net = make_net([3, 5, 4], seed=0)
    kfac = KFAC(net, stat_decay=0.0)
    obs = torch.randn(32, 3, dtype=DT)
    capture(kfac, net, obs, seed=1)
    set_random_objective_grad(net, obs, seed=2)
    kfac.layers[1].S[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"S of layer '2'"):
        kfac.natural_gradient()


def test_state_dict_round_trip_resumes_exactly():
    net = make_net([3, 5, 4], seed=0)
    kfac = KFAC(net, stat_decay=0.9, inv_every=2)
    obs = torch.randn(32, 3, dtype=DT)
    capture(kfac, net, obs, seed=1)
    set_random_objective_grad(net, obs, seed=2)
    kfac.natural_gradient()
    capture(kfac, net, 1.5 * obs, seed=3)  # factors now differ from the stale eigendecomposition
    set_random_objective_grad(net, obs, seed=2)
    other = KFAC(net, stat_decay=0.9, inv_every=2)
    other.load_state_dict(copy.deepcopy(kfac.state_dict()))
    for a, b in zip(kfac.natural_gradient(), other.natural_gradient()):  # stale on both
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(kfac.natural_gradient(), other.natural_gradient()):  # refreshed on both
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    rng = kfac.factor_eigenvalue_range(1)
    assert set(rng) == {"A_eig_min", "A_eig_max", "S_eig_min", "S_eig_max"}
    assert rng["A_eig_min"] <= rng["A_eig_max"] and rng["S_eig_max"] > 0


# ---------------------------------------------------------------------------------- Conv2d (KFC)
def conv_net(seed, padding=1, stride=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=padding, stride=stride), nn.Flatten()).to(DT)


@pytest.mark.parametrize("padding, stride", [(1, 1), (0, 2)])
def test_conv_factors_are_kfc_patch_and_spatially_summed_gradient_covariances(padding, stride):
    """A = mean over samples and positions of [patch, 1][patch, 1]^T (the patches unfolded by hand,
    loop over positions), S = mean over samples of sum over positions of g_t g_t^T, with
    g = d log pi / d output at each position, per sample."""
    net = conv_net(0, padding, stride)
    conv = net[0]
    kfac = KFAC(net, stat_decay=0.0)
    obs = torch.randn(5, 2, 5, 5, dtype=DT)
    logits, actions = capture(kfac, net, obs, seed=1)
    g_all = torch.nn.functional.one_hot(actions, logits.shape[-1]).to(DT) - logits.softmax(-1)  # d log pi / d logits
    g_map = g_all.reshape(5, 3, *net[0](obs).shape[-2:])  # per sample, [out, H_out, W_out]
    padded = torch.nn.functional.pad(obs, (padding,) * 4)
    h_out, w_out = g_map.shape[-2:]
    A = torch.zeros(2 * 9 + 1, 2 * 9 + 1, dtype=DT)
    S = torch.zeros(3, 3, dtype=DT)
    for n in range(5):
        for i in range(h_out):
            for j in range(w_out):
                patch = padded[n, :, i * stride:i * stride + 3, j * stride:j * stride + 3].reshape(-1)
                a = torch.cat([patch, torch.ones(1, dtype=DT)])
                A += torch.outer(a, a)
                S += torch.outer(g_map[n, :, i, j], g_map[n, :, i, j])
    A /= 5 * h_out * w_out
    S /= 5
    torch.testing.assert_close(kfac.layers[0].A, A, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(kfac.layers[0].S, S, rtol=1e-10, atol=1e-12)
    assert conv.weight.grad is None  # the capture leaves no gradient behind


def test_conv_natural_gradient_is_the_explicit_kronecker_solve():
    net = conv_net(2)
    conv = net[0]
    kfac = KFAC(net, stat_decay=0.0, damping=1e-2)
    obs = torch.randn(6, 2, 4, 4, dtype=DT)
    capture(kfac, net, obs, seed=3)
    c = torch.randn(6, 3 * 16, generator=torch.Generator().manual_seed(4), dtype=DT)
    (net(obs) * c).sum().backward()
    G = torch.cat([conv.weight.grad.reshape(3, -1), conv.bias.grad[:, None]], dim=1)
    expected = explicit_direction(kfac.layers[0].A, kfac.layers[0].S, G, 1e-2)
    d_weight, d_bias = kfac.natural_gradient()
    assert d_weight.shape == conv.weight.shape
    torch.testing.assert_close(torch.cat([d_weight.reshape(3, -1), d_bias[:, None]], dim=1), expected,
                               rtol=1e-9, atol=1e-12)


def test_a_conv_covering_its_whole_input_is_a_linear_layer():
    """One output position (kernel = input size, no padding): the KFC factors are the Linear ones."""
    torch.manual_seed(5)
    conv = nn.Conv2d(2, 3, 3).to(DT)
    linear = nn.Linear(18, 3).to(DT)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(3, -1))
        linear.bias.copy_(conv.bias)
    conv_net_, linear_net = nn.Sequential(conv, nn.Flatten()), nn.Sequential(nn.Flatten(), linear)
    k_conv, k_linear = KFAC(conv_net_, stat_decay=0.0), KFAC(linear_net, stat_decay=0.0)
    obs = torch.randn(7, 2, 3, 3, dtype=DT)
    capture(k_conv, conv_net_, obs, seed=6)
    capture(k_linear, linear_net, obs, seed=6)
    torch.testing.assert_close(k_conv.layers[0].A, k_linear.layers[0].A, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(k_conv.layers[0].S, k_linear.layers[0].S, rtol=1e-12, atol=1e-14)


def test_grouped_or_same_padded_convs_are_refused():
    with pytest.raises(ValueError, match="groups=1"):
        KFAC(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)))
    with pytest.raises(ValueError, match="numeric padding"):
        KFAC(nn.Sequential(nn.Conv2d(2, 2, 3, padding="same")))


def _shared_trunk_model(seed):
    torch.manual_seed(seed)
    return nn.ModuleDict({"trunk": nn.Linear(3, 4), "pi": nn.Linear(4, 2), "v": nn.Linear(4, 1)}).to(DT)


def _joint_log_likelihood(model, obs, z_pi, z_v, generator):
    """log pi(a|s) + log N(y; V(s), 1) (up to a constant) with a ~ pi, y ~ N(V(s), 1), per row; the
    trunk's outputs z_pi, z_v: its two uses, one per head, as actor(obs) and critic(obs) run it."""
    dist = Categorical(logits=model["pi"](torch.tanh(z_pi)))
    values = model["v"](torch.tanh(z_v)).squeeze(-1)
    actions = torch.multinomial(dist.probs.detach(), 1, generator=generator).squeeze(-1)
    y = values.detach() + torch.randn(values.shape, generator=generator, dtype=DT)
    return dist.log_prob(actions) - 0.5 * (values - y).pow(2)


def test_a_layer_used_by_two_heads_sums_the_uses_gradient_covariances():
    """An encoder shared by actor and critic: S = S_pi + S_V (sum over uses), A = the mean input."""
    model, obs = _shared_trunk_model(0), torch.randn(64, 3, dtype=DT)
    kfac = KFAC(model, stat_decay=0.0)
    z_pi, z_v = model["trunk"](obs), model["trunk"](obs)
    joint = _joint_log_likelihood(model, obs, z_pi, z_v, torch.Generator().manual_seed(1))
    g_pi, g_v = torch.autograd.grad(joint.sum(), [z_pi, z_v], retain_graph=True)  # per-row grads
    with kfac.capture_statistics():
        joint.mean().backward()
    a = torch.cat([obs, torch.ones(64, 1, dtype=DT)], dim=1)
    torch.testing.assert_close(kfac.layers[0].A, a.T @ a / 64, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kfac.layers[0].S, (g_pi.T @ g_pi + g_v.T @ g_v) / 64, rtol=1e-10, atol=1e-12)


def test_summing_the_uses_is_the_joint_fisher_because_the_cross_terms_vanish():
    """E[(g_pi + g_V)(g_pi + g_V)^T] = E[g_pi g_pi^T] + E[g_V g_V^T]: each sampled score has mean
    zero given s. Monte Carlo over 200,000 draws of (a, y) at 8 states."""
    model = _shared_trunk_model(2)
    obs = torch.randn(8, 3, dtype=DT).repeat(25_000, 1)
    z_pi, z_v = model["trunk"](obs), model["trunk"](obs)
    joint = _joint_log_likelihood(model, obs, z_pi, z_v, torch.Generator().manual_seed(3))
    g_pi, g_v = torch.autograd.grad(joint.sum(), [z_pi, z_v])
    g = g_pi + g_v
    fisher, summed = g.T @ g / len(g), (g_pi.T @ g_pi + g_v.T @ g_v) / len(g)
    assert (fisher - summed).abs().max() < 0.01 * summed.abs().max()
    assert (fisher - summed / 2).abs().max() > 0.2 * summed.abs().max()  # the mean of the uses is not it


def test_float32_arithmetic_gives_the_float64_factors_and_direction_to_float32_precision():
    """``dtype=torch.float32`` (ACKTR's kfac_dtype): the products in float32, the factors float64."""
    results = []
    for dtype in (torch.float64, torch.float32):
        net = conv_net(2).float()
        kfac = KFAC(net, stat_decay=0.0, damping=1e-2, dtype=dtype)
        obs = torch.randn(6, 2, 4, 4, generator=torch.Generator().manual_seed(5))
        capture(kfac, net, obs, seed=3)
        (net(obs) * torch.randn(6, 3 * 16, generator=torch.Generator().manual_seed(4))).sum().backward()
        results.append((kfac.layers[0].A, kfac.layers[0].S, kfac.natural_gradient()))
    (A64, S64, d64), (A32, S32, d32) = results
    assert A32.dtype == S32.dtype == torch.float64
    torch.testing.assert_close(A32, A64, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(S32, S64, rtol=1e-5, atol=1e-6)
    for a, b in zip(d32, d64):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not torch.equal(A32, A64)  # the float32 products did run
