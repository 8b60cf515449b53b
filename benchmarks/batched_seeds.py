"""Many seeds of one configuration: ``hydra/launcher=batched`` against the basic launcher and joblib.

    python benchmarks/batched_seeds.py --repeats 3                       # 16 seeds, PPO-Clip CartPole-v1, 50k steps each
    python benchmarks/batched_seeds.py --algo trpo --env Pendulum-v1 --steps 50000
    python benchmarks/batched_seeds.py --algo ppo_clip --env Hopper-v5 --steps 100000

Each launcher runs the same sweep, ``rlrun -m algo=<algo> env=<env> seed=0,...,N-1
total_steps=<steps>`` (the pair's tuned file applies), as a real subprocess in a fresh directory,
timed around the whole command: the basic launcher (one job after another in one process),
joblib on every core (``hydra.launcher.n_jobs``) and the batched launcher (one group of seeds a
core). Printed: each wall time, the batched one over the faster of the other two, every seed's
status, the seeds that reached the env's reward threshold under each, and a permutation test of
the batched seeds' final returns against the same seeds' run one by one (each batched seed starts
as its run alone, equal to float32 rounding, but over a run the rounding grows into other
episodes, as another BLAS would: the returns are the same only as samples). The time the env's own
``step`` takes for the same number of steps with random actions is measured alone, as the part
no batching of the networks can remove. Written to ``benchmarks/results/speed/batched_<algo>_<env>.json``.

On a shared machine whose speed drifts from minute to minute, ``--repeats N`` runs the launchers
in turn N times and compares each one's median wall time (all of them are written).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import ROOT, git_commit, machine  # benchmarks/, beside this script
LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={os.cpu_count() or 1}"],
    "batched": ["hydra/launcher=batched", f"hydra.launcher.processes={os.cpu_count() or 1}"],
}


def sweep(launcher: str, algo: str, env: str, seeds: int, steps: int) -> dict:
    """One launcher's run of the sweep: its wall time and every seed's summary."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["rlrun", "-m", f"algo={algo}", f"env={env}", f"seed={','.join(map(str, range(seeds)))}",
               f"total_steps={steps}", "progress=off", f"hydra.sweep.dir={tmp}/sweep", *LAUNCHERS[launcher]]
        start = time.perf_counter()
        res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if res.returncode != 0:
            raise SystemExit(f"{launcher}: {' '.join(cmd)} exited {res.returncode}:\n{res.stderr[-2000:]}")
        runs = [json.loads(p.read_text()) for p in Path(tmp, "sweep").rglob("summary.json")]
    return {"command": " ".join(cmd[:-1] if launcher == "basic" else cmd).replace(f"{tmp}/", ""),
            "wall_s": round(wall, 2), "seeds": len(runs),
            "completed": sum(r["status"] == "completed" for r in runs),
            "solved": sum(r["solved_step"] is not None for r in runs),
            "final_return_mean": round(sum(r["final_return"] or 0.0 for r in runs) / max(len(runs), 1), 1),
            "final_returns": [r["final_return"] for r in sorted(runs, key=lambda r: r["seed"])],
            "update_s_per_iter_mean": round(sum(r["update_s_per_iter"] for r in runs) / max(len(runs), 1), 5)}


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the lower middle of an even number), with every run's wall time."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    return {**ordered[(len(ordered) - 1) // 2], "wall_s_runs": [r["wall_s"] for r in runs]}


def permutation_p_value(a: list[float], b: list[float], draws: int = 20_000) -> float:
    """Two-sided p-value of the difference of the means of ``a`` and ``b`` under random relabelling:
    whether one launcher's seeds return differently from the other's beyond seed noise."""
    import numpy as np

    rng = np.random.default_rng(0)
    values, n = np.asarray(a + b, dtype=float), len(a)
    observed = abs(values[:n].mean() - values[n:].mean())
    shuffled = np.array([rng.permutation(values) for _ in range(draws)])
    differences = np.abs(shuffled[:, :n].mean(1) - shuffled[:, n:].mean(1))
    return float((differences >= observed - 1e-12).mean())


def env_step_seconds(env: str, steps: int) -> float:
    """``steps`` calls of the env's ``step`` with random actions (resets included), alone."""
    import gymnasium as gym

    environment = gym.make(env)
    environment.reset(seed=0)
    environment.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = environment.step(environment.action_space.sample())
        if terminated or truncated:
            environment.reset()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", default="ppo_clip")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50_000, help="env steps a seed")
    parser.add_argument("--launchers", nargs="+", default=list(LAUNCHERS), choices=list(LAUNCHERS))
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/speed/batched_<algo>_<env>.json")
    parser.add_argument("--repeats", type=int, default=1,
                        help="sweeps of each launcher, taken in turn; each launcher's median wall time is compared")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {launcher: [] for launcher in args.launchers}
    for _ in range(args.repeats):  # in turn, so that a slow spell of the machine falls on every launcher
        for launcher in args.launchers:
            r = sweep(launcher, args.algo, args.env, args.seeds, args.steps)
            runs[launcher].append(r)
            print(f"{launcher:>8}: {r['wall_s']:7.1f} s  {r['completed']}/{r['seeds']} completed  {r['solved']} solved  "
                  f"final return {r['final_return_mean']}", flush=True)
    results = {launcher: median_run(launcher_runs) for launcher, launcher_runs in runs.items()}
    cores = os.cpu_count() or 1
    env_s = env_step_seconds(args.env, args.seeds * args.steps) / cores  # spread over the cores, as the seeds are
    summary = {"what": f"{args.seeds} seeds of {args.algo} on {args.env}, {args.steps} env steps each, "
                       f"{cores} cores, one torch thread a process",
               "repeats": args.repeats,
               "date": datetime.date.today().isoformat(),
               "commit": git_commit(),
               "machine": machine(),
               "launchers": results,
               "env_step_s_per_core": round(env_s, 2)}
    others = [results[k]["wall_s"] for k in ("basic", "joblib") if k in results]
    if "batched" in results and others:
        summary["batched_over_fastest_other"] = round(results["batched"]["wall_s"] / min(others), 3)
        summary["env_step_share_of_batched"] = round(env_s / results["batched"]["wall_s"], 3)
        # Each seed starts as its run alone, equal to float32 rounding; over a run the rounding of
        # batched products grows into other episodes, so the returns are compared as samples
        reference = results["basic" if "basic" in results else "joblib"]["final_returns"]
        summary["same_returns_p_value"] = round(permutation_p_value(results["batched"]["final_returns"], reference), 3)
        print(f"batched / fastest other: {summary['batched_over_fastest_other']:.3f}  "
              f"(env.step alone: {env_s:.1f} s a core, {summary['env_step_share_of_batched']:.0%} of the batched wall time)")
        print(f"final returns, batched vs one by one: permutation test p = {summary['same_returns_p_value']:.3f} "
              f"(a small p: they differ beyond seed noise)")
    out = args.out or ROOT / "benchmarks" / "results" / "speed" / f"batched_{args.algo}_{args.env}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
