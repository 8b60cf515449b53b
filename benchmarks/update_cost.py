"""Update time per iteration (the rollout excluded) of every registered algorithm on the same batch.

    python benchmarks/update_cost.py --env CartPole-v1 --num-envs 8 --n-steps 256 --iterations 10

Each algorithm runs as a real `rlrun` subprocess (its shipped per-algorithm settings, but the
same rollout size N x T) and reports `update_s_per_iter` and `fps` from its summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlrun.algos.registry import algorithms  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=256)
    p.add_argument("--iterations", type=int, default=10)
    args = p.parse_args()
    batch = args.num_envs * args.n_steps
    print(f"{args.env}, batch {batch} ({args.num_envs} envs x {args.n_steps} steps), {args.iterations} iterations")
    print(f"{'algo':12} {'update s/iter':>14} {'env steps/s':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for algo in algorithms():
            run_dir = Path(tmp) / algo
            subprocess.run([sys.executable, "-m", "rlrun.cli", f"algo={algo}", f"env={args.env}", "progress=off",
                            f"env.num_envs={args.num_envs}", f"algo.n_steps={args.n_steps}",
                            f"total_steps={batch * args.iterations}", f"hydra.run.dir={run_dir}"],
                           check=True, capture_output=True)
            summary = json.loads((run_dir / "summary.json").read_text())
            print(f"{algo:12} {summary['update_s_per_iter']:>14.4f} {summary['fps']:>12.0f}")


if __name__ == "__main__":
    main()
