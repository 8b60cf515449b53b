"""Learning through the spaces beyond Box and Discrete: every registered algorithm on the small envs
of tests/space_envs.py (a Dict observation, MultiDiscrete actions, MultiBinary actions, uint8
images through the small CNN, and a Tuple of an image and a nested Dict through the composite
encoder's CNN).

    python benchmarks/spaces.py [--steps 100000] [--seeds 0 1 2] [--out outputs/spaces]

Each run is rlrun.train in this process with the algorithm's own defaults (tuned=none), 8 envs,
and, for the batch algorithms (PPO-Clip, TRPO, PPO-Penalty), 128-step rollouts instead of 2,048 so
that 100k steps are ~100 iterations. Prints the final training return (mean of the last 20
episodes) per seed against a random policy's and the best possible return.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rlrun  # noqa: E402
from rlrun.algos.registry import algorithms  # noqa: E402

ENVS = {"DictMatch-v0": (3.33, 10.0), "MultiDiscreteMatch-v0": (6.67, 20.0), "MultiBinaryMatch-v0": (5.0, 10.0),
        "ImageMatch-v0": (3.33, 10.0), "TupleImageMatch-v0": (6.67, 20.0)}
SHORT_ROLLOUTS = {"ppo_clip", "trpo", "ppo_penalty"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+", default=list(algorithms()), choices=list(algorithms()))
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--out", type=Path, default=Path("outputs/spaces"))
    args = parser.parse_args()
    print(f"{'env':24} {'algo':12} {'final return per seed':>28}   random   best")
    for env in args.envs:
        random_return, best = ENVS[env]
        for algo in args.algos:
            finals = []
            for seed in args.seeds:
                overrides = [f"algo={algo}", f"env=tests.space_envs:{env}", f"seed={seed}", f"total_steps={args.steps}",
                             "env.num_envs=8", "tuned=none", "progress=off", "checkpoint_every=0",
                             f"hydra.run.dir={args.out}/{algo}/{env}/seed{seed}"]
                if algo in SHORT_ROLLOUTS:
                    overrides.append("algo.n_steps=128")
                finals.append(rlrun.train(overrides)["final_return"])
            shown = " / ".join(f"{v:.2f}" for v in finals)
            print(f"{env:24} {algo:12} {shown:>28}   {random_return:6.2f} {best:6.2f}", flush=True)


if __name__ == "__main__":
    main()
