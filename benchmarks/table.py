"""Rebuild a benchmark table of docs/benchmarks.md from the committed results (benchmarks/results/<suite>/).

    python benchmarks/table.py                        # the MuJoCo 1M table (markdown, stdout)
    python benchmarks/table.py --suite zoo-classic    # classic control and Box2D against rl-zoo
    python benchmarks/table.py --results benchmarks/results/mujoco-1m-zoo --zoo   # MuJoCo with tuned=zoo

Reads every ``<algo>/<env>/seed<N>/`` written by ``benchmarks/grid.py`` (``summary.json``,
``eval.json``, ``run.json``) and prints, per (algorithm, env): the training steps (rl-zoo's in
brackets), each seed's final training return (mean of the last 20 episodes) and deterministic
evaluation (10 episodes of the final policy, ``rlrun-eval``), their mean with a 95%
percentile-bootstrap CI over seeds, each seed's evaluation normalised between a uniformly random
policy (``random_policy.json``) and rl-baselines3-zoo's figure (``references.py``; the target: at
least 0.8 on at least 4 of 5 seeds), the median wall time and env steps/s, and, on MuJoCo, the published figure the
row is judged against. Nothing is run; the numbers are only read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grid import CHAPTER_ALGOS, SUITES  # noqa: E402  (benchmarks/, beside this script)
from references import NORMALISED_TARGET, PUBLISHED, SEEDS_PASSING, ZOO_GSDE, zoo_reference  # noqa: E402
from rlrun.algos.registry import algorithms  # noqa: E402
from rlrun.report import BOOTSTRAP_SEED, bootstrap_ci  # noqa: E402

# Table rows: the chapter's four in its order, then any other registered algorithm with results.
ALGO_NAMES = {name: algorithms()[name].title for name in [*CHAPTER_ALGOS, *sorted(set(algorithms()) - set(CHAPTER_ALGOS))]}


def load(results: Path) -> dict[tuple[str, str], list[dict]]:
    """{(algo, env): [per-seed record]} with summary and eval merged, seeds in order."""
    runs: dict[tuple[str, str], list[dict]] = {}
    # <algo>/<env>/seed<N>/, where an env id may hold a slash (MinAtar/Breakout-v1: one folder deeper)
    for summary_file in sorted(results.glob("**/seed*/summary.json")):
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


def steps(n: float) -> str:
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k"


def normalised(algo: str, env: str, evals: list[float], random: dict[str, float]) -> str:
    """Each seed's evaluation normalised between R_random (0) and the zoo's figure (1), how many
    seeds reach the target, and the verdict (met: at least SEEDS_PASSING of them); '-' where
    either end is unknown."""
    ref, r_random = zoo_reference(algo, env), random.get(env)
    if ref is None or r_random is None:
        return "-"
    zoo_algo, zoo, zoo_steps = ref
    scores = [(e - r_random) / (zoo - r_random) for e in evals]
    passed = sum(score >= NORMALISED_TARGET for score in scores)
    gsde = ", gSDE" if (zoo_algo, env) in ZOO_GSDE else ""
    verdict = "met" if passed >= SEEDS_PASSING * len(scores) else "missed"
    return (f"{' / '.join(f'{score:.2f}' for score in scores)}: {passed} of {len(scores)} >= {NORMALISED_TARGET}, "
            f"{verdict} ({zoo_algo.upper()} {zoo:.0f} at {steps(zoo_steps)}{gsde})")


def table(runs: dict[tuple[str, str], list[dict]], random: dict[str, float], envs: tuple[str, ...],
          published: bool = True) -> str:
    """``published``: MuJoCo rows judged against the papers' libraries (the paper settings); false:
    against rl-zoo's normalised score alone (``tuned=zoo`` runs, rl-zoo's own settings)."""
    lines = ["| algo | env | steps | seeds | final return (per seed) | mean [95% CI] | deterministic eval (per seed) "
             "| mean [95% CI] | zoo-normalised eval (per seed) | wall min (median) | steps/s (median) | judged against |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for algo in ALGO_NAMES:
        for env in envs:
            records = runs.get((algo, env))
            if not records:
                continue
            finals = [r["final_return"] for r in records]
            evals = [r["eval"] for r in records]
            if zoo_reference(algo, env) is None and not (algo in PUBLISHED and env in PUBLISHED[algo][1]):
                ref = "shown only: no zoo figure"
            elif not published:
                ref = f"zoo-normalised >= {NORMALISED_TARGET}"
            elif algo == "acktr":
                trpo = runs.get(("trpo", env), [])
                ref = f"rlrun TRPO median {np.median([r['final_return'] for r in trpo]):.0f}" if trpo else "rlrun TRPO (not run)"
            elif algo in PUBLISHED and env in PUBLISHED[algo][1]:
                source, figures = PUBLISHED[algo]
                ref = f"{source} {figures[env]}"
            else:
                ref = f"zoo-normalised >= {NORMALISED_TARGET}"
            incomplete = sum(r["status"] != "completed" for r in records)
            seeds = ",".join(str(r["seed"]) for r in records) + (f" ({incomplete} incomplete)" if incomplete else "")
            lines.append(" | ".join([
                f"| {ALGO_NAMES[algo]}", env, steps(max(r["steps_done"] for r in records)), seeds,
                " / ".join(f"{v:.0f}" for v in finals), mean_ci(finals),
                " / ".join(f"{v:.0f}" for v in evals), mean_ci(evals), normalised(algo, env, evals, random),
                f"{np.median([r['wall_s'] for r in records]) / 60:.1f}",
                f"{np.median([r['fps'] for r in records]):.0f}", ref]) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=SUITES, default="mujoco-1m")
    parser.add_argument("--results", type=Path, default=None, help="default: benchmarks/results/<suite>")
    parser.add_argument("--zoo", action="store_true", help="runs with tuned=zoo: judged against rl-zoo alone")
    args = parser.parse_args()
    args.results = args.results or ROOT / "benchmarks" / "results" / args.suite
    runs = load(args.results)
    if not runs:
        print(f"no results under {args.results}", file=sys.stderr)
        return 1
    random_file = args.results.parent / "random_policy.json"
    random = {env: r["mean"] for env, r in json.loads(random_file.read_text()).items()} if random_file.is_file() else {}
    print(table(runs, random, SUITES[args.suite], published=not args.zoo))
    records = [r for rs in runs.values() for r in rs]
    unchecked = sum(r["nonfinite"] is None for r in records)
    print(f"\n{len(records)} runs; NaN/inf values in their logged scalars: "
          f"{sum(r['nonfinite'] or 0 for r in records)}" + (f" ({unchecked} runs not checked)" if unchecked else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
