"""Draw a benchmark suite's learning curves from the committed results (benchmarks/results/<suite>/).

    python benchmarks/figures.py                                   # MuJoCo 1M -> docs/mujoco-1m/
    python benchmarks/figures.py --results benchmarks/results/minatar --out docs/minatar

Reads each ``<algo>/<env>/seed<N>/curve.json`` written by ``benchmarks/grid.py`` (the training
returns ``rollout/ep_return`` and the deterministic evaluations ``eval/mean_return``, each thinned
to at most 200 points) and draws, per env and metric, every algorithm's mean over its seeds with a
bootstrap 95% band, as ``rlrun-report`` draws a sweep (the same code). Unlike ``rlrun-report``, it
needs no event files: every seed of a committed table is drawn, whichever machine ran it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlrun.report import GroupKey, Run, plot_env, pyplot  # noqa: E402

METRICS = ("rollout/ep_return", "eval/mean_return")


def load(results: Path, metric: str) -> dict[GroupKey, list[Run]]:
    """{(env, algo, ()): the seeds' runs with ``metric`` as their curve}, algorithms in name order."""
    groups: dict[GroupKey, list[Run]] = {}
    for curve_file in sorted(results.glob("**/seed*/curve.json")):
        seed_dir = curve_file.parent
        summary = json.loads((seed_dir / "summary.json").read_text())
        points = json.loads(curve_file.read_text()).get(metric, [])
        steps, values = (np.array(column, dtype=float) for column in zip(*points)) if points else (np.empty(0),) * 2
        run = Run(path=seed_dir, env=summary["env"], algo=summary["algo"], seed=summary["seed"], overrides=(),
                  summary=summary, curve=(steps, values))
        groups.setdefault((run.env, run.algo, ()), []).append(run)
    return {key: sorted(groups[key], key=lambda run: run.seed) for key in sorted(groups)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "mujoco-1m")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "mujoco-1m")
    parser.add_argument("--points", type=int, default=100, help="points of the common env-step grid")
    args = parser.parse_args(argv)
    plt = pyplot()
    if plt is None:
        parser.error("matplotlib is not installed")
    args.out.mkdir(parents=True, exist_ok=True)
    for metric in METRICS:
        groups = load(args.results, metric)
        for env in sorted({key[0] for key in groups}):
            env_groups = {key: runs for key, runs in groups.items() if key[0] == env}
            path = plot_env(env, env_groups, {key: key[1] for key in env_groups}, metric, args.points, args.out, plt)
            if path is not None:
                seeds = ", ".join(f"{key[1]} {len(runs)}" for key, runs in env_groups.items())
                print(f"{path} ({seeds} seeds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
