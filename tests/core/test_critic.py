import torch
from torch import nn

from rlrun.core.critic import fit_value_function
from rlrun.core.flat_params import FlatParameters


def test_fit_value_function_reduces_the_error_and_moves_only_the_critic():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    other = nn.Linear(3, 1)  # e.g. the actor: must not move
    other_before = [p.clone() for p in other.parameters()]
    obs = torch.randn(256, 3)
    returns = obs @ torch.tensor([1.0, -2.0, 0.5])
    params = FlatParameters(critic.parameters())
    optimizer = torch.optim.Adam([params.vector], lr=1e-2)

    def mse() -> float:
        return (critic(obs).squeeze(-1) - returns).pow(2).mean().item()

    before = mse()
    model = lambda x: critic(x).squeeze(-1)  # noqa: E731
    fit_value_function(model, params, optimizer, obs, returns, epochs=30, batch_size=64, generator=torch.Generator().manual_seed(0))
    assert mse() < 0.1 * before
    assert all(torch.equal(a, b) for a, b in zip(other_before, other.parameters()))
