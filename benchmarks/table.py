"""Rebuild the README's MuJoCo table from the committed results (benchmarks/results/mujoco-1m/).

    python benchmarks/table.py                      # markdown table on stdout
    python benchmarks/table.py --results DIR

Reads every ``<algo>/<env>/seed<N>/`` written by ``benchmarks/mujoco_1m.py`` (``summary.json``,
``eval.json``) and prints, per (algorithm, env): each seed's final training return (mean of the last
20 episodes) and deterministic evaluation (10 episodes of the final policy, ``rlrun-eval``), their
mean with a 95% percentile-bootstrap CI over seeds, the evaluation's score normalised between a random
policy (``random_policy.json``) and rl-baselines3-zoo's figure, the median wall time and env steps/s,
and the published figure it is judged against. Nothing is run; the numbers are only read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlrun.report import BOOTSTRAP_SEED, bootstrap_ci  # noqa: E402

ALGO_NAMES = {"ppo_clip": "PPO-Clip", "trpo": "TRPO", "ppo_penalty": "PPO-Penalty", "acktr": "ACKTR"}
ENVS = ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")
# What each row is judged against (shared/REFERENCES.md): CleanRL ppo_continuous_action (MuJoCo v4,
# 1M, 3 seeds) for PPO-Clip; OpenAI Baselines trpo_mpi (1M, 6 seeds) for TRPO and PPO-Penalty;
# ACKTR against rlrun's own TRPO (median final return, same seeds).
REFERENCE = {
    "ppo_clip": ("CleanRL", {"Hopper-v5": 2383, "HalfCheetah-v5": 1443, "Walker2d-v5": 2288}),
    "trpo": ("Baselines trpo_mpi", {"Hopper-v5": 1913, "HalfCheetah-v5": 1290, "Walker2d-v5": 2343}),
    "ppo_penalty": ("Baselines trpo_mpi", {"Hopper-v5": 1913, "HalfCheetah-v5": 1290, "Walker2d-v5": 2343}),
}


# rl-baselines3-zoo's published returns (deterministic evaluation; MuJoCo v3) for the normalised score
# (R - R_random) / (R_zoo - R_random) of issue 10; ACKTR is scored against the zoo's A2C, PPO-Penalty
# against its PPO.
ZOO = {
    "ppo_clip": {"Hopper-v5": 2410, "HalfCheetah-v5": 5819, "Walker2d-v5": 3479},
    "trpo": {"Hopper-v5": 3618, "HalfCheetah-v5": 1785, "Walker2d-v5": 4933},
    "acktr": {"Hopper-v5": 733, "HalfCheetah-v5": 3041, "Walker2d-v5": 582},
}
ZOO["ppo_penalty"] = ZOO["ppo_clip"]


def load(results: Path) -> dict[tuple[str, str], list[dict]]:
    """{(algo, env): [per-seed record]} with summary and eval merged, seeds in order."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for summary_file in sorted(results.glob("*/*/seed*/summary.json")):
        seed_dir = summary_file.parent
        summary = json.loads(summary_file.read_text())
        evaluation = json.loads((seed_dir / "eval.json").read_text())
        meta = json.loads((seed_dir / "run.json").read_text())
        runs.setdefault((summary["algo"], summary["env"]), []).append(
            {**summary, "eval": evaluation["mean"], "nonfinite": meta.get("nonfinite_scalars")})
    for records in runs.values():
        records.sort(key=lambda r: r["seed"])
    return runs


def mean_ci(values: list[float]) -> str:
    low, high = bootstrap_ci(values, np.random.default_rng(BOOTSTRAP_SEED))
    return f"{np.mean(values):.0f} [{low:.0f}, {high:.0f}]"


def table(runs: dict[tuple[str, str], list[dict]], random: dict[str, float]) -> str:
    lines = ["| algo | env | seeds | final return (per seed) | mean [95% CI] | deterministic eval (per seed) "
             "| mean [95% CI] | zoo-normalised eval | wall min (median) | steps/s (median) | judged against |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for algo in ALGO_NAMES:
        for env in ENVS:
            records = runs.get((algo, env))
            if not records:
                continue
            finals = [r["final_return"] for r in records]
            evals = [r["eval"] for r in records]
            if algo == "acktr":
                trpo = runs.get(("trpo", env), [])
                ref = f"rlrun TRPO median {np.median([r['final_return'] for r in trpo]):.0f}" if trpo else "rlrun TRPO (not run)"
            else:
                source, figures = REFERENCE[algo]
                ref = f"{source} {figures[env]}"
            incomplete = sum(r["status"] != "completed" for r in records)
            seeds = ",".join(str(r["seed"]) for r in records) + (f" ({incomplete} incomplete)" if incomplete else "")
            zoo, r_random = ZOO[algo][env], random.get(env)
            normalised = "-" if r_random is None else f"{(np.mean(evals) - r_random) / (zoo - r_random):.2f} (zoo {zoo})"
            lines.append(" | ".join([
                f"| {ALGO_NAMES[algo]}", env, seeds,
                " / ".join(f"{v:.0f}" for v in finals), mean_ci(finals),
                " / ".join(f"{v:.0f}" for v in evals), mean_ci(evals), normalised,
                f"{np.median([r['wall_s'] for r in records]) / 60:.1f}",
                f"{np.median([r['fps'] for r in records]):.0f}", ref]) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "mujoco-1m")
    args = parser.parse_args()
    runs = load(args.results)
    if not runs:
        print(f"no results under {args.results}", file=sys.stderr)
        return 1
    random_file = args.results.parent / "random_policy.json"
    random = {env: r["mean"] for env, r in json.loads(random_file.read_text()).items()} if random_file.is_file() else {}
    print(table(runs, random))
    records = [r for rs in runs.values() for r in rs]
    unchecked = sum(r["nonfinite"] is None for r in records)
    print(f"\n{len(records)} runs; NaN/inf values in their logged scalars: "
          f"{sum(r['nonfinite'] or 0 for r in records)}" + (f" ({unchecked} runs not checked)" if unchecked else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
