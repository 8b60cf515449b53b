"""The trust-region diagnostics, read back from the TensorBoard logs of real CartPole runs.

    python benchmarks/diagnostics.py --total-steps 50000

TRPO with a raised bound (`algo.max_kl=0.1`): the line search must backtrack (`trpo/backtracks`
> 0) on some iterations, and every accepted step must have `trpo/kl` <= `trpo/max_kl`.
PPO-Penalty with a small target (`algo.kl_target=0.001`): lambda must adapt in both directions
(`ppo_penalty/adapt` takes -1 and +1 over the run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rlrun.report import read_scalars


def run(run_dir: Path, *overrides: str) -> None:
    res = subprocess.run([sys.executable, "-m", "rlrun.cli", "env=CartPole-v1", "progress=off",
                          f"hydra.run.dir={run_dir}", *overrides], capture_output=True, text=True)
    if res.returncode != 0:
        last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit status {res.returncode}"
        sys.exit(f"rlrun {' '.join(overrides)} failed: {last}")


def check_trpo(run_dir: Path, max_kl: float) -> bool:
    tags = ["trpo/backtracks", "trpo/step_accepted", "trpo/kl", "trpo/max_kl"]
    s = {tag: values for tag, (_, values) in read_scalars(run_dir, tags).items()}
    accepted = s["trpo/step_accepted"] == 1
    backtracks, kl_accepted = s["trpo/backtracks"][accepted], s["trpo/kl"][accepted]
    print(f"TRPO, max_kl={max_kl}: {len(accepted)} iterations, {int(accepted.sum())} steps accepted, "
          f"{int((~accepted).sum())} rejected")
    if not accepted.any():
        return False
    backtracked = int((backtracks > 0).sum())
    over = int((kl_accepted > s["trpo/max_kl"][accepted] + 1e-9).sum())
    print(f"  {backtracked} accepted after backtracking (max j {int(backtracks.max())}); trpo/kl of accepted "
          f"steps: max {kl_accepted.max():.4f}, mean {kl_accepted.mean():.4f}; {over} above trpo/max_kl")
    return backtracked > 0 and over == 0


def check_ppo_penalty(run_dir: Path, kl_target: float) -> bool:
    tags = ["ppo_penalty/adapt", "ppo_penalty/kl_coef", "ppo_penalty/kl"]
    s = {tag: values for tag, (_, values) in read_scalars(run_dir, tags).items()}
    adapt = s["ppo_penalty/adapt"]
    counts = {d: int((adapt == d).sum()) for d in (-1, 0, 1)}
    print(f"PPO-Penalty, kl_target={kl_target}: {len(adapt)} iterations; lambda decreased {counts[-1]}, "
          f"kept {counts[0]}, increased {counts[1]} times")
    if not len(adapt):
        return False
    print(f"  kl_coef range [{s['ppo_penalty/kl_coef'].min():.3g}, {s['ppo_penalty/kl_coef'].max():.3g}], "
          f"median ppo_penalty/kl {np.median(s['ppo_penalty/kl']):.4f}")
    return counts[-1] > 0 and counts[1] > 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--total-steps", type=int, default=50000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-kl", type=float, default=0.1)
    p.add_argument("--kl-target", type=float, default=0.001)
    args = p.parse_args()
    common = [f"total_steps={args.total_steps}", f"seed={args.seed}"]
    with tempfile.TemporaryDirectory() as tmp:
        trpo_dir, penalty_dir = Path(tmp) / "trpo", Path(tmp) / "ppo_penalty"
        run(trpo_dir, "algo=trpo", f"algo.max_kl={args.max_kl}", *common)
        run(penalty_dir, "algo=ppo_penalty", f"algo.kl_target={args.kl_target}", *common)
        trpo_ok = check_trpo(trpo_dir, args.max_kl)
        penalty_ok = check_ppo_penalty(penalty_dir, args.kl_target)
    print("TRPO backtracks and KL bound:", "MET" if trpo_ok else "NOT MET")
    print("PPO-Penalty lambda adapts both ways:", "MET" if penalty_ok else "NOT MET")
    return 0 if trpo_ok and penalty_ok else 1


if __name__ == "__main__":
    sys.exit(main())
