"""Update time per iteration (the rollout excluded) of every registered algorithm on the same batch,
beside the floor of its first-order arithmetic.

    python benchmarks/update_cost.py --env CartPole-v1 --num-envs 8 --n-steps 256 --iterations 10

Each algorithm runs as a real `rlrun` subprocess (its shipped per-algorithm settings, but the
same rollout size N x T) and reports `update_s_per_iter` and `fps` from its summary.json.

The floor: the same first-order arithmetic without autograd, heads or losses, measured here at one
torch thread. One minibatch step is the forward of the MLPs (the composed config's hidden sizes and
activation; the env's observation size in, logits or action dims out, 1 for the critic), their
written-out backward (rlrun.core.written_gradients.MLPPass, for a random upstream gradient at the
outputs) and rlrun's flat-vector Adam. Steps per iteration, from `rlrun algo=X ... --cfg job --resolve`:
    ppo_clip     n_epochs x ceil(batch / batch_size) steps of actor + critic (without target_kl's early stop)
    a2c          one whole-batch step of actor + critic
    ppo_penalty  policy_epochs x ceil(batch / batch_size) actor steps + critic_epochs x ceil(...) critic steps
    trpo, acktr  the critic's steps only: its actor step is not first-order (footnote *)

With ``--seeds S``: the cost a seed of S seeds stepped together (``<Algorithm>.for_seeds``, as the
batched launcher runs them) against the same update of one network alone, measured in this
process on the same random batches (the best of a few updates of each; S seeds' time / S), beside
the floor, and written to ``benchmarks/results/speed/update_cost_stacked.json``:

    python benchmarks/update_cost.py --seeds 8
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import tempfile
import time
from typing import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlrun.algos.registry import algorithms  # noqa: E402
from rlrun.core.batch import Batch  # noqa: E402
from rlrun.core.flat_params import FlatParameters, unique_parameters  # noqa: E402
from rlrun.core.optimizers import Adam  # noqa: E402
from rlrun.core.written_gradients import MLPPass  # noqa: E402
from rlrun.networks import mlp  # noqa: E402
from provenance import machine  # noqa: E402  (this folder is on sys.path when run as a script)
from vs_sb3 import composed_config  # noqa: E402

SECOND_ORDER = ("trpo", "acktr")  # their floor is the critic's alone


class Floor:
    """MLPs as rlrun builds them, one flat parameter vector, their gradient from the written-out
    backward pass for a given upstream gradient (core.written_gradients.MLPPass, tested against
    autograd) and Adam (core.optimizers): a first-order step's arithmetic without heads or losses."""

    def __init__(self, nets: list[list[int]], activation: str):
        self.nets = [mlp(sizes[0], sizes[1:-1], sizes[-1], activation, out_gain=1.0, ortho_init=True) for sizes in nets]
        self.params = FlatParameters(unique_parameters(*self.nets))
        self.optimizer = Adam(self.params.vector, lr=3e-4, eps=1e-5)

    @torch.no_grad()
    def step(self, x: torch.Tensor, upstream: list[torch.Tensor]) -> None:
        for net, grad_out in zip(self.nets, upstream):
            MLPPass.of(net, x).backward(grad_out)
        self.optimizer.step()


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


def random_batch(actor: torch.nn.Module, obs_dim: int, size: int, generator: torch.Generator) -> Batch:
    """``size`` standard-normal observations, actions sampled from ``actor``, random advantages."""
    obs = torch.randn(size, obs_dim, generator=generator)
    with torch.no_grad():
        pi = actor(obs)
        actions = pi.sample()
        log_probs = pi.log_prob(actions)
    advantages = torch.randn(size, generator=generator)
    return Batch(obs=obs, actions=actions, log_probs=log_probs, values=torch.zeros(size), advantages=advantages,
                 returns=advantages + 0.1 * torch.randn(size, generator=generator))


def best_seconds(call: Callable[[], object], repeats: int = 5) -> float:
    """The best time of ``repeats`` calls, after one to warm up."""
    call()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def update_seconds(algo, batch: Batch, repeats: int = 5) -> float:
    """The best of ``repeats`` updates, after one to warm up."""
    return best_seconds(lambda: algo.update(batch, progress=0.0), repeats)


def stacked_costs(env: str, num_envs: int, n_steps: int, seeds: int) -> list[dict]:
    """Per algorithm: the update of one network and of each of ``seeds`` stacked ones, seconds an iteration."""
    import gymnasium as gym
    from omegaconf import OmegaConf

    from rlrun.config import register_configs
    from rlrun.networks import make_networks
    from rlrun.core.seeds import stacked_batch

    register_configs()
    spaces = gym.make(env)
    rows = []
    for name, registration in algorithms().items():
        composed = composed_config(name, env, 0, [f"env.num_envs={num_envs}", f"algo.n_steps={n_steps}"])
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(registration.config), composed["algo"]))
        nets, batches = [], []
        for seed in range(seeds):
            torch.manual_seed(seed)
            actor, critic = make_networks(cfg, spaces.observation_space, spaces.action_space)
            nets.append((actor, critic))
            batches.append(random_batch(actor, math.prod(spaces.observation_space.shape), num_envs * n_steps,
                                        torch.Generator().manual_seed(seed)))
        alone = update_seconds(registration.algorithm(cfg, *nets[0], 0), batches[0])
        stacked = registration.algorithm.for_seeds(cfg, [a for a, _ in nets], [c for _, c in nets], list(range(seeds)))
        per_seed = update_seconds(stacked, stacked_batch(batches)) / seeds
        floor = floor_seconds(name, env, num_envs, n_steps)
        rows.append({"algo": name, "alone_s": round(alone, 5), "stacked_per_seed_s": round(per_seed, 5),
                     "stacked_over_alone": round(per_seed / alone, 3), "floor_s": None if floor is None else round(floor, 5)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=256)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--seeds", type=int, default=None, help="the cost a seed of this many stacked, against alone")
    args = p.parse_args()
    torch.set_num_threads(1)
    batch = args.num_envs * args.n_steps
    if args.seeds:
        rows = stacked_costs(args.env, args.num_envs, args.n_steps, args.seeds)
        print(f"{args.env}, batch {batch} a seed, {args.seeds} seeds stacked, 1 thread; seconds an iteration")
        print(f"{'algo':12} {'alone':>9} {'a seed stacked':>15} {'ratio':>7} {'floor':>9}")
        for r in rows:
            floor = "-" if r["floor_s"] is None else f"{r['floor_s']:.4f}"
            print(f"{r['algo']:12} {r['alone_s']:>9.4f} {r['stacked_per_seed_s']:>15.4f} {r['stacked_over_alone']:>7.2f} {floor:>9}")
        out = Path(__file__).resolve().parent / "results" / "speed" / "update_cost_stacked.json"
        out.write_text(json.dumps({"what": f"update seconds an iteration on {args.env} ({batch} samples a seed), one "
                                           f"network alone and a seed of {args.seeds} stacked (for_seeds), one torch "
                                           "thread; floor as update_cost.json's", "date": datetime.date.today().isoformat(),
                                   "machine": machine(),
                                   "command": " ".join(["python", "benchmarks/update_cost.py", *sys.argv[1:]]),
                                   "rows": rows}, indent=2) + "\n")
        print(f"written: {out}")
        return
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
