"""Update time per iteration (the rollout excluded) of every registered algorithm on the same batch,
beside the floor of its first-order arithmetic.

    python benchmarks/update_cost.py --env CartPole-v1 --num-envs 8 --n-steps 256 --iterations 10

Each algorithm runs as a real `rlrun` subprocess (its shipped per-algorithm settings, but the
same rollout size N x T) and reports `update_s_per_iter` and `fps` from its summary.json.

The floor: the same first-order arithmetic without autograd or optimiser objects, measured here
at one torch thread. One minibatch step is the forward of the MLPs (the composed config's hidden
sizes and activation; the env's observation size in, logits or action dims out, 1 for the critic),
a hand-written backward (a random upstream gradient at the outputs) and Adam as elementwise ops on
one flat vector. Steps per iteration, from `rlrun algo=X ... --cfg job --resolve`:
    ppo_clip     n_epochs x ceil(batch / batch_size) steps of actor + critic (without target_kl's early stop)
    a2c          one whole-batch step of actor + critic
    ppo_penalty  policy_epochs x ceil(batch / batch_size) actor steps + critic_epochs x ceil(...) critic steps
    trpo, acktr  the critic's steps only: its actor step is not first-order (footnote *)
The hand-written backward is checked against torch.autograd (float64, both activations) first.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlrun.algos.registry import algorithms  # noqa: E402
from vs_sb3 import composed_config  # noqa: E402  (this folder is on sys.path when run as a script)

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}
SECOND_ORDER = ("trpo", "acktr")  # their floor is the critic's alone


def layer_views(flat: torch.Tensor, nets: list[list[int]]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per net (its layer sizes [in, hidden..., out]), (W [out, in], b [out]) as views of ``flat``."""
    views, offset = [], 0
    for sizes in nets:
        layers = []
        for n_in, n_out in zip(sizes, sizes[1:]):
            w = flat[offset:offset + n_out * n_in].view(n_out, n_in)
            b = flat[offset + n_out * n_in:offset + n_out * n_in + n_out]
            layers.append((w, b))
            offset += n_out * n_in + n_out
        views.append(layers)
    return views


def forward(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor, activation: str) -> list[torch.Tensor]:
    """The input of every layer, then the output (linear last layer)."""
    hs = [x]
    for i, (w, b) in enumerate(layers):
        z = torch.addmm(b, hs[-1], w.t())
        hs.append(ACTIVATIONS[activation](z) if i < len(layers) - 1 else z)
    return hs


def backward(layers: list, grads: list, hs: list[torch.Tensor], g: torch.Tensor, activation: str) -> None:
    """Writes dL/dW, dL/db into ``grads`` (views of the flat gradient), g = dL/d(output)."""
    for i in reversed(range(len(layers))):
        gw, gb = grads[i]
        torch.mm(g.t(), hs[i], out=gw)
        torch.sum(g, 0, out=gb)
        if i > 0:
            g = g @ layers[i][0]  # dL/d(activation output)
            h = hs[i]
            g = g * (1 - h * h) if activation == "tanh" else g * (h > 0)  # through tanh / relu


class Floor:
    """Some MLPs whose weights are one flat vector, trained by a hand-written backward and Adam."""

    def __init__(self, nets: list[list[int]], activation: str, lr: float = 3e-4, eps: float = 1e-5,
                 dtype: torch.dtype = torch.float32):
        size = sum(n_out * n_in + n_out for sizes in nets for n_in, n_out in zip(sizes, sizes[1:]))
        self.nets, self.activation, self.lr, self.eps, self.t = nets, activation, lr, eps, 0
        self.params = torch.randn(size, dtype=dtype) * 0.1
        self.grads, self.m, self.v = (torch.zeros(size, dtype=dtype) for _ in range(3))
        self.layers, self.grad_layers = layer_views(self.params, nets), layer_views(self.grads, nets)

    def gradient(self, x: torch.Tensor, upstream: list[torch.Tensor]) -> None:
        for layers, grads, g in zip(self.layers, self.grad_layers, upstream):
            backward(layers, grads, forward(layers, x, self.activation), g, self.activation)

    def adam(self, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.t += 1
        self.m.mul_(beta1).add_(self.grads, alpha=1 - beta1)
        self.v.mul_(beta2).addcmul_(self.grads, self.grads, value=1 - beta2)
        denom = (self.v / (1 - beta2 ** self.t)).sqrt_().add_(self.eps)
        self.params.addcdiv_(self.m, denom, value=-self.lr / (1 - beta1 ** self.t))

    def step(self, x: torch.Tensor, upstream: list[torch.Tensor]) -> None:
        self.gradient(x, upstream)
        self.adam()


def check_backward() -> None:
    """The hand-written gradient equals autograd's on random inputs (float64), for both activations."""
    nets = [[7, 32, 32, 3], [7, 32, 32, 1]]
    for activation in ACTIVATIONS:
        floor = Floor(nets, activation, dtype=torch.float64)
        x = torch.randn(50, 7, dtype=torch.float64)
        upstream = [torch.randn(50, sizes[-1], dtype=torch.float64) for sizes in nets]
        floor.gradient(x, upstream)
        params = floor.params.clone().requires_grad_()
        loss = sum((forward(layers, x, activation)[-1] * g).sum() for layers, g in zip(layer_views(params, nets), upstream))
        loss.backward()
        error = ((params.grad - floor.grads).norm() / params.grad.norm()).item()
        assert error < 1e-6, f"hand-written backward ({activation}) is off autograd by {error:.2e} relative"
    print("hand-written backward == autograd (relative error < 1e-6, tanh and relu)")


def env_sizes(env_id: str) -> tuple[int, int]:
    """Observation size, and the actor's output size (logits or action dims)."""
    import gymnasium as gym

    env = gym.make(env_id)
    obs, act = env.observation_space, env.action_space
    env.close()
    if isinstance(act, gym.spaces.Discrete):
        return math.prod(obs.shape), int(act.n)
    if isinstance(act, gym.spaces.MultiDiscrete):
        return math.prod(obs.shape), int(sum(act.nvec))
    return math.prod(obs.shape), math.prod(act.shape)


def floor_plan(algo: str, a: dict, batch: int) -> list[tuple[str, int, int]] | None:
    """(the nets trained, minibatch size, steps per iteration) of the algorithm's first-order part."""
    def steps(epochs: int, batch_size: int) -> tuple[int, int]:
        return min(batch_size, batch), epochs * math.ceil(batch / batch_size)

    if algo == "ppo_clip":
        return [("actor+critic", *steps(a["n_epochs"], a["batch_size"]))]
    if algo == "a2c":
        return [("actor+critic", batch, 1)]
    if algo == "ppo_penalty":
        return [("actor", *steps(a["policy_epochs"], a["batch_size"])),
                ("critic", *steps(a["critic_epochs"], a["batch_size"]))]
    if algo == "trpo":
        return [("critic", *steps(a["critic_epochs"], a["batch_size"]))]
    if algo == "acktr":
        return [("critic", *steps(a["critic_epochs"], a["critic_batch_size"] or batch))]
    return None


def step_seconds(nets: list[list[int]], activation: str, batch_size: int, blocks: int = 5, reps: int = 20) -> float:
    """One minibatch step of these nets: the best of ``blocks`` timed blocks of ``reps`` steps."""
    floor = Floor(nets, activation)
    x = torch.randn(batch_size, nets[0][0])
    upstream = [torch.randn(batch_size, sizes[-1]) for sizes in nets]
    for _ in range(5):
        floor.step(x, upstream)
    best = math.inf
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(reps):
            floor.step(x, upstream)
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def floor_seconds(algo: str, env: str, num_envs: int, n_steps: int) -> float | None:
    a = composed_config(algo, env, 0, [f"env.num_envs={num_envs}", f"algo.n_steps={n_steps}"])["algo"]
    plan = floor_plan(algo, a, num_envs * n_steps)
    if plan is None:
        return None
    obs_dim, out_dim = env_sizes(env)
    actor, critic = [obs_dim, *a["hidden_sizes"], out_dim], [obs_dim, *a["hidden_sizes"], 1]
    nets = {"actor+critic": [actor, critic], "actor": [actor], "critic": [critic]}
    return sum(steps * step_seconds(nets[which], a["activation"], batch_size) for which, batch_size, steps in plan)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=256)
    p.add_argument("--iterations", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    check_backward()
    batch = args.num_envs * args.n_steps
    print(f"{args.env}, batch {batch} ({args.num_envs} envs x {args.n_steps} steps), {args.iterations} iterations, 1 thread")
    print(f"{'algo':12} {'update s/iter':>14} {'floor s/iter':>13} {'ratio':>7} {'env steps/s':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for algo in algorithms():
            run_dir = Path(tmp) / algo
            subprocess.run([sys.executable, "-m", "rlrun.cli", f"algo={algo}", f"env={args.env}", "progress=off",
                            "torch_threads=1", f"env.num_envs={args.num_envs}", f"algo.n_steps={args.n_steps}",
                            f"total_steps={batch * args.iterations}", f"hydra.run.dir={run_dir}"],
                           check=True, capture_output=True)
            summary = json.loads((run_dir / "summary.json").read_text())
            floor = floor_seconds(algo, args.env, args.num_envs, args.n_steps)
            name = algo + (" *" if algo in SECOND_ORDER else "")
            ratio = "-" if not floor else f"{summary['update_s_per_iter'] / floor:.1f}"
            floor_text = "-" if floor is None else f"{floor:.4f}"
            print(f"{name:12} {summary['update_s_per_iter']:>14.4f} {floor_text:>13} {ratio:>7} {summary['fps']:>12.0f}")
    print("* trpo, acktr: the floor is the critic's first-order steps only; their actor step (CG / K-FAC) has none here")


if __name__ == "__main__":
    main()
