"""Run a benchmark grid (algorithms x envs x seeds) with the shipped defaults and keep the results.

    python benchmarks/grid.py --suite mujoco-1m --algos ppo_clip trpo --envs Hopper-v5 --jobs 2
    python benchmarks/grid.py --suite zoo-classic            # every classic-control and Box2D env

A suite names its envs; every run uses the env's tuned file (``conf/tuned/<algo>/<env>.yaml``)
as a user's ``rlrun algo=<algo> env=<env>`` would, its budget included. ``mujoco-1m``: Hopper,
HalfCheetah, Walker2d at 1M steps; ``zoo-classic``: the other shipped envs, at rl-zoo's budgets
(``benchmarks/references.py``) unless the tuned file says why not.

Each run is a real ``rlrun`` subprocess writing into ``<out>/<algo>/<env>/seed<seed>/`` (event
files and checkpoints stay there, never in git). A finished run is evaluated with ``rlrun-eval``
(10 deterministic episodes of the final policy) and its small JSON files are copied into
``<results>/<algo>/<env>/seed<seed>/``: ``summary.json``, ``eval.json``, ``curve.json`` (the
training and evaluation return curves, downsampled) and ``run.json`` (command, commit, date, and
the number of NaN/inf values among all the scalars the run logged).
The script is restartable: a run whose results exist is skipped, and a run that was cut short
(``checkpoints/last.pt`` without a completed summary) is continued with ``rlrun resume=``.
``benchmarks/table.py --suite <suite>`` rebuilds the docs/benchmarks.md table from ``<results>``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlrun.algos.registry import algorithms  # noqa: E402
from rlrun.report import read_scalars  # noqa: E402
from rlrun.sweep_jobs import earlier_attempt  # noqa: E402
from provenance import git_commit, machine  # noqa: E402  (benchmarks/, beside this script)
from returns import count_nonfinite  # noqa: E402

CHAPTER_ALGOS = ("ppo_clip", "trpo", "ppo_penalty", "acktr")  # the suites' default: the chapter's four
SUITES = {
    "mujoco-1m": ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"),
    "zoo-classic": ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "LunarLander-v3", "MountainCar-v0",
                    "MountainCarContinuous-v0"),
    "minatar": ("MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1"),
}
CURVE_POINTS = 200  # at most this many points per curve in curve.json


def downsample(points: list[tuple[int, float]], n: int = CURVE_POINTS) -> list[list[float]]:
    """Every k-th (step, value) so that at most ``n`` remain, always keeping the last one."""
    if len(points) <= n:
        return [[s, v] for s, v in points]
    k = -(-len(points) // n)
    kept = points[::k]
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return [[s, v] for s, v in kept]


def run_one(algo: str, env: str, seed: int, out: Path, results: Path, extra: list[str], check_only: bool = False) -> str:
    run_dir = out / algo / env / f"seed{seed}"
    dest = results / algo / env / f"seed{seed}"
    if (dest / "summary.json").is_file():
        meta = json.loads((dest / "run.json").read_text())
        if "nonfinite_scalars" not in meta and run_dir.is_dir():  # kept by an older version of this script
            meta["nonfinite_scalars"] = count_nonfinite(run_dir)
            (dest / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
        return f"{algo} {env} seed {seed}: already in {dest}"
    if check_only:
        return f"{algo} {env} seed {seed}: not run yet"
    state, _ = earlier_attempt(run_dir)  # what rlrun's sweep jobs also continue from
    if state != "completed":
        if state == "resumable":
            cmd = ["rlrun", f"resume={run_dir}"]  # its saved overrides already say progress=lines
        else:
            if run_dir.is_dir():  # a run that died before its first checkpoint: nothing to continue
                shutil.rmtree(run_dir)
            cmd = ["rlrun", f"algo={algo}", f"env={env}", f"seed={seed}", "progress=lines",
                   f"hydra.run.dir={run_dir}", *extra]
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(run_dir.parent / f"seed{seed}.log", "a") as logf:
            rc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            return f"{algo} {env} seed {seed}: rlrun exited {rc} (log: {run_dir.parent / f'seed{seed}.log'})"
    subprocess.run(["rlrun-eval", str(run_dir), "--episodes", "10"], check=True, capture_output=True)
    scalars = read_scalars(run_dir, ["rollout/ep_return", "eval/mean_return"])
    curve = {tag: downsample(list(zip(steps.astype(int).tolist(), values.tolist())))
             for tag, (steps, values) in scalars.items()}
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_dir / "summary.json", dest / "summary.json")
    shutil.copy(run_dir / "eval.json", dest / "eval.json")
    (dest / "curve.json").write_text(json.dumps(curve) + "\n")
    meta = {"command": f"rlrun algo={algo} env={env} seed={seed} {' '.join(extra)}".strip(),
            "commit": git_commit(), "date": datetime.date.today().isoformat(),
            "machine": f"{machine()}, 1 torch thread",
            "nonfinite_scalars": count_nonfinite(run_dir)}
    (dest / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    summary = json.loads((dest / "summary.json").read_text())
    evaluation = json.loads((dest / "eval.json").read_text())
    return (f"{algo} {env} seed {seed}: final_return {summary['final_return']:.1f}, eval {evaluation['mean']:.1f}, "
            f"{summary['fps']:.0f} steps/s, {summary['wall_s'] / 60:.1f} min")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", nargs="+", default=list(CHAPTER_ALGOS), choices=list(algorithms()))
    parser.add_argument("--suite", choices=SUITES, default="mujoco-1m")
    parser.add_argument("--envs", nargs="+", default=None, help="a subset of the suite's envs (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one per core)")
    parser.add_argument("--out", type=Path, default=None, help="run directories (default: outputs/<suite>)")
    parser.add_argument("--results", type=Path, default=None,
                        help="where the small JSON results are kept, committed (default: benchmarks/results/<suite>)")
    parser.add_argument("--check-only", action="store_true",
                        help="run nothing; only count NaN/inf for kept results that lack the count")
    parser.add_argument("extra", nargs="*", help="extra rlrun overrides for every run (e.g. total_steps=100000)")
    args = parser.parse_args()
    envs = args.envs or SUITES[args.suite]
    out = (args.out or ROOT / "outputs" / args.suite).resolve()
    results = (args.results or ROOT / "benchmarks" / "results" / args.suite).resolve()
    grid = [(a, e, s) for a in args.algos for e in envs for s in args.seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, a, e, s, out, results, args.extra, args.check_only)
                   for a, e, s in grid]
        failed = 0
        for future in futures:
            line = future.result()
            failed += "exited" in line
            print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
