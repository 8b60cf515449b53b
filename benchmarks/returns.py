"""Sample-efficiency benchmark: run rlrun over seeds with the shipped defaults and print a table.

    python benchmarks/returns.py --algo ppo_clip --env CartPole-v1 --seeds 0 1 2 3 4
    python benchmarks/returns.py --algo trpo --env Pendulum-v1 --seeds 0 1 2 --target-return -200 --set total_steps=300000

Each run is a real `rlrun` subprocess (shipped defaults, `progress=off`) writing under
`outputs/bench/`; the table is read back from the runs' summary.json files, and every scalar in
their event files is checked for NaN/inf (the `non-finite` column; any counts as a failed target).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rlrun.report import CONFIDENCE, bootstrap_ci, read_scalars


def run_one(algo: str, env: str, seed: int, out_root: Path, extra: list[str]) -> dict:
    run_dir = out_root / f"{algo}_{env}_seed{seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = [sys.executable, "-m", "rlrun.cli", f"algo={algo}", f"env={env}", f"seed={seed}", "progress=off",
           f"hydra.run.dir={run_dir}", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return {"seed": seed, "bench_error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
    return {"seed": seed, **json.loads((run_dir / "summary.json").read_text()), "nonfinite": count_nonfinite(run_dir)}


def count_nonfinite(run_dir: Path) -> int:
    """Non-finite values among every scalar the run logged (`hparam/*` excluded: the runs of the
    committed results wrote the HParams metrics there, NaN meaning "not solved")."""
    return sum(int((~np.isfinite(values)).sum())
               for tag, (_, values) in read_scalars(run_dir).items() if not tag.startswith("hparam/"))


def fmt(x, digits=1) -> str:
    return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--jobs", type=int, default=1, help="runs at once (each uses one torch thread)")
    p.add_argument("--target-solved-step", type=int, default=None, help="pass if every seed solves by then")
    p.add_argument("--target-return", type=float, default=None, help="pass if every seed's final_return >= this")
    p.add_argument("--out", type=Path, default=Path("outputs/bench"))
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE", help="extra rlrun overrides, e.g. --set total_steps=300000")
    args = p.parse_args()

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda s: run_one(args.algo, args.env, s, args.out, args.overrides), args.seeds))

    print(f"\n{args.algo} on {args.env}  overrides: {' '.join(args.overrides) or '(shipped defaults)'}")
    print(f"{'seed':>4} {'steps':>8} {'final_return':>12} {'solved_step':>11} {'solved_wall_s':>13} {'fps':>7} {'wall_s':>7}")
    ok = True
    for r in rows:
        if "bench_error" in r:
            print(f"{r['seed']:>4} ERROR {r['bench_error']}")
            ok = False
            continue
        print(f"{r['seed']:>4} {r['steps_done']:>8} {fmt(r['final_return']):>12} {fmt(r['solved_step']):>11} "
              f"{fmt(r['solved_wall_s'], 2):>13} {fmt(r['fps'], 0):>7} {fmt(r['wall_s']):>7} {r['nonfinite']:>10}")
        ok &= r["nonfinite"] == 0
        if args.target_solved_step is not None:
            ok &= r["solved_step"] is not None and r["solved_step"] <= args.target_solved_step
        if args.target_return is not None:
            ok &= r["final_return"] is not None and r["final_return"] >= args.target_return
    good = [r for r in rows if "bench_error" not in r]
    if good:
        finals = [r["final_return"] for r in good if r["final_return"] is not None]
        solved = [r["solved_step"] for r in good if r["solved_step"] is not None]
        if finals:
            low, high = bootstrap_ci(finals, np.random.default_rng(0))
            print(f"mean final_return {fmt(statistics.mean(finals))}, {CONFIDENCE:.0%} bootstrap CI "
                  f"[{fmt(low)}, {fmt(high)}] over {len(finals)} seeds")
        print(f"median final_return {fmt(statistics.median(finals)) if finals else '-'}; "
              f"solved {len(solved)}/{len(good)}, median solved_step {fmt(statistics.median(solved)) if solved else '-'}; "
              f"median fps {statistics.median(r['fps'] for r in good):.0f}")
    if args.target_solved_step is not None or args.target_return is not None:
        print("TARGET", "MET" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
