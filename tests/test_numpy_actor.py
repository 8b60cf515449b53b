"""The rollout's numpy act path (acting.NumpyActor) against the torch actor it stands in for."""

import numpy as np
import pytest
import torch

from rlrun.acting import NumpyActor
from rlrun.networks import CategoricalActor, GaussianActor, MultiCategoricalActor


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_forward_is_the_torch_forward(activation):
    torch.manual_seed(0)
    actor = GaussianActor(5, 3, [16, 8], activation, True, -0.5)
    obs = torch.randn(7, 5)
    mean = actor.net.fast_forward(obs).detach().numpy()
    np.random.seed(0)
    noise = np.random.standard_normal((7, 3)).astype(np.float32)
    np.random.seed(0)
    sample = NumpyActor(actor).act(obs.numpy())
    np.testing.assert_allclose(sample, mean + np.exp(-0.5) * noise, rtol=1e-5, atol=1e-6)


def test_categorical_samples_follow_the_softmax_of_the_logits():
    torch.manual_seed(1)
    actor = CategoricalActor(4, 3, [8], "tanh", False)
    obs = torch.randn(2, 4)
    probs = torch.softmax(actor.net.fast_forward(obs), -1).detach().numpy()
    np.random.seed(0)
    numpy_actor = NumpyActor(actor)
    n = 40_000
    draws = np.stack([numpy_actor.act(obs.numpy()) for _ in range(n)])  # [n, 2]
    for row in range(2):
        freq = np.bincount(draws[:, row], minlength=3) / n
        assert np.all(np.abs(freq - probs[row]) < 4 * np.sqrt(probs[row] * (1 - probs[row]) / n) + 1e-9)


def test_gaussian_samples_have_the_policy_mean_and_std():
    torch.manual_seed(2)
    actor = GaussianActor(3, 2, [8, 8], "tanh", True, 0.3)
    obs = torch.randn(1, 3)
    mean = actor.net.fast_forward(obs).detach().numpy()[0]
    np.random.seed(1)
    numpy_actor = NumpyActor(actor)
    draws = np.concatenate([numpy_actor.act(obs.numpy()) for _ in range(20_000)])
    np.testing.assert_allclose(draws.mean(0), mean, atol=4 * np.exp(0.3) / np.sqrt(20_000))
    np.testing.assert_allclose(draws.std(0), np.exp(0.3), rtol=0.03)


def test_it_reads_the_parameters_as_they_are_when_made():
    actor = CategoricalActor(2, 2, [4], "tanh", True)
    numpy_actor = NumpyActor(actor)
    with torch.no_grad():
        actor.net.linears[-1].bias.copy_(torch.tensor([0.0, 50.0]))  # in place: what an optimiser step does
    np.random.seed(0)
    assert NumpyActor(actor).act(np.zeros((3, 2), np.float32)).tolist() == [1, 1, 1]
    assert numpy_actor.layers[-1][1].tolist() == [0.0, 50.0]  # views of the tensors' memory, not copies


def test_which_actors_take_the_numpy_path():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert NumpyActor.applies(CategoricalActor(2, 2, [4], "tanh", True), cpu)
    assert NumpyActor.applies(GaussianActor(2, 2, [4], "relu", True, 0.0), cpu)
    assert not NumpyActor.applies(GaussianActor(2, 2, [4], "tanh", True, 0.0), cuda)
    assert not NumpyActor.applies(MultiCategoricalActor(2, [2, 3], [4], "tanh", True), cpu)
