import pytest
import torch
from torch import nn

from rlrun.core.critic import fit_value_function
from rlrun.core.flat_params import FlatParameters
from rlrun.core.optimizers import Adam
from rlrun.networks import Critic


class SequentialCritic(nn.Module):
    """A critic that is no rlrun MLP: its gradient comes from autograd."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))

    def value(self, obs):
        return self.body(obs).squeeze(-1)


@pytest.mark.parametrize("make", [SequentialCritic, lambda: Critic(3, [16], "tanh", True)],
                         ids=["autograd", "written-out"])
def test_fit_value_function_reduces_the_error_and_moves_only_the_critic(make):
    torch.manual_seed(0)
    critic = make()
    other = nn.Linear(3, 1)  # e.g. the actor: must not move
    other_before = [p.clone() for p in other.parameters()]
    obs = torch.randn(256, 3)
    returns = obs @ torch.tensor([1.0, -2.0, 0.5])
    params = FlatParameters(critic.parameters())
    optimizer = Adam(params.vector, lr=1e-2)

    def mse() -> float:
        return (critic.value(obs) - returns).pow(2).mean().item()

    before = mse()
    fit_value_function(critic, params, optimizer, obs, returns, epochs=30, batch_size=64, generator=torch.Generator().manual_seed(0))
    assert mse() < 0.1 * before
    assert all(torch.equal(a, b) for a, b in zip(other_before, other.parameters()))
