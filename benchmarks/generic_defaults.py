"""rlrun's generic defaults on envs no tuned file has seen, beside Stable-Baselines3's defaults.

    python benchmarks/generic_defaults.py --jobs 2                     # every env, algorithm and seed
    python benchmarks/generic_defaults.py --envs Acrobot-v1 --libs rlrun --seeds 0
    python benchmarks/generic_defaults.py --table                      # print the kept results only

rlrun: every registered algorithm with ``tuned=none``, as ``rlrun algo=<algo> env=<env> tuned=none``
gives a user (the algorithm's defaults, 8 envs, no normalisation). SB3:
PPO, A2C and sb3-contrib's TRPO with their defaults and one env (``make_vec_env``'s default);
the MLP policy, or the multi-input one for Dict observations; ``DictReach-v0``'s MultiDiscrete
``start``, which SB3 ignores, is added by a wrapper (``reach_env.StartShift``). Each run is a fresh
process with one torch thread. The figure compared is the final training return, the mean of
the last 20 episodes, the same on both sides.

Each run's JSON goes to ``benchmarks/results/generic-defaults/<lib>/<algo>/<env>/seed<N>.json``
(a run whose file exists is skipped, an unfinished one starts again); the table, and each
algorithm's number of updates in 100k steps with the defaults of an env without a file, are
printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from rlrun.algos.registry import algorithms, configs  # noqa: E402
from rlrun.config import EnvConfig  # noqa: E402

ENVS = {"Acrobot-v1": 100_000, "reach_env:DictReach-v0": 100_000, "BipedalWalker-v3": 500_000}
SB3_ALGOS = ("ppo", "a2c", "trpo")
SB3_TITLES = {"ppo": "PPO", "a2c": "A2C", "trpo": "TRPO (sb3-contrib)"}
FINAL_EPISODES = 20
RESULTS = ROOT / "benchmarks" / "results" / "generic-defaults"


def env_name(env: str) -> str:
    return env.split(":")[-1]


def updates_in(steps: int) -> dict[str, int]:
    """Updates each rlrun algorithm makes in ``steps`` env steps with its defaults and an env without
    a file (EnvConfig's num_envs), beside SB3's (one env; PPO and TRPO 2,048 steps, A2C 5)."""
    num_envs = EnvConfig().num_envs
    counts = {name: steps // (config().n_steps * num_envs) for name, config in configs().items()}
    return {**counts, **{f"sb3 {algo}": steps // (5 if algo == "a2c" else 2048) for algo in SB3_ALGOS}}


def run_rlrun(algo: str, env: str, seed: int, budget: int, out: Path) -> dict:
    run_dir = out / "rlrun" / algo / env_name(env) / f"seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # an unfinished run starts again (they are short)
    cmd = ["rlrun", f"algo={algo}", f"env={env}", "tuned=none", f"total_steps={budget}", f"seed={seed}",
           "progress=off", f"hydra.run.dir={run_dir}"]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(cmd, capture_output=True, text=True, env=environ)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip().splitlines()[-1:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"final_return": summary["final_return"], "steps": summary["steps_done"],
            "updates": summary["iterations"], "wall_s": summary["wall_s"], "command": " ".join(cmd[:6])}


def run_sb3(algo: str, env: str, seed: int, budget: int) -> dict:
    """One SB3 run in this process (called through ``--sb3-run`` in a fresh one)."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.env_util import make_vec_env
    from sb3_contrib import TRPO

    import reach_env

    torch.set_num_threads(1)
    env_id = env_name(env)
    shift = reach_env.StartShift if env_id == "DictReach-v0" else None
    vec_env = make_vec_env(env_id, n_envs=1, seed=seed, wrapper_class=shift)
    policy = "MultiInputPolicy" if isinstance(vec_env.observation_space, gym.spaces.Dict) else "MlpPolicy"
    model = {"ppo": PPO, "a2c": A2C, "trpo": TRPO}[algo](policy, vec_env, seed=seed, device="cpu")
    start = time.perf_counter()
    model.learn(total_timesteps=budget)
    returns = [info["r"] for info in model.ep_info_buffer][-FINAL_EPISODES:]
    n_steps = model.n_steps * model.n_envs
    return {"final_return": float(np.mean(returns)), "steps": int(model.num_timesteps),
            "updates": int(model.num_timesteps // n_steps), "wall_s": time.perf_counter() - start,
            "command": f"{SB3_TITLES[algo]}({policy!r}, make_vec_env({env_id!r}, n_envs=1), seed={seed})"}


def one(lib: str, algo: str, env: str, seed: int, out: Path, results: Path) -> str:
    dest = results / lib / algo / env_name(env) / f"seed{seed}.json"
    if dest.is_file():
        return f"{lib} {algo} {env} seed {seed}: kept"
    budget = ENVS[env]
    if lib == "rlrun":
        record = run_rlrun(algo, env, seed, budget, out)
    else:
        res = subprocess.run([sys.executable, __file__, "--sb3-run", algo, env, str(seed)], capture_output=True,
                             text=True)
        if res.returncode != 0:
            raise RuntimeError(f"sb3 {algo} {env} seed {seed} failed: {res.stderr.strip().splitlines()[-1:]}")
        record = json.loads(res.stdout.strip().splitlines()[-1])
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps({"lib": lib, "algo": algo, "env": env_name(env), "seed": seed, "budget": budget,
                                **record}, indent=2) + "\n")
    return f"{lib} {algo} {env} seed {seed}: final return {record['final_return']:.2f}, {record['wall_s']:.0f} s"


def table(results: Path) -> str:
    rows: dict[tuple[str, str, str], list[dict]] = {}
    for file in sorted(results.glob("*/*/*/seed*.json")):
        record = json.loads(file.read_text())
        rows.setdefault((record["env"], record["lib"], record["algo"]), []).append(record)
    lines = ["| env | steps | library | algorithm | updates | final return (per seed) | mean |", "|---|---|---|---|---|---|---|"]
    for (env, lib, algo), records in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "rlrun", kv[0][2])):
        records.sort(key=lambda r: r["seed"])
        finals = [r["final_return"] for r in records]
        title = algorithms()[algo].title if lib == "rlrun" else SB3_TITLES[algo]
        budget = records[0]["budget"]
        lines.append(f"| {env} | {budget // 1000}k | {'rlrun' if lib == 'rlrun' else 'SB3'} | {title} | "
                     f"{records[0]['updates']} | {' / '.join(f'{v:.2f}' if abs(v) < 10 else f'{v:.0f}' for v in finals)} | "
                     f"{np.mean(finals):.2f} |")
    return "\n".join(lines)


def updates_table() -> str:
    counts = updates_in(100_000)
    lines = ["| algorithm | updates in 100k steps |", "|---|---|"]
    lines += [f"| rlrun {algorithms()[name].title} | {counts[name]} |" for name in algorithms()]
    lines += [f"| SB3 {SB3_TITLES[algo]} | {counts[f'sb3 {algo}']} |" for algo in SB3_ALGOS]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--libs", nargs="+", default=["rlrun", "sb3"], choices=["rlrun", "sb3"])
    parser.add_argument("--algos", nargs="+", default=list(algorithms()), choices=list(algorithms()))
    parser.add_argument("--sb3-algos", nargs="+", default=list(SB3_ALGOS), choices=list(SB3_ALGOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "generic-defaults", help="run directories")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the kept results, run nothing")
    parser.add_argument("--sb3-run", nargs=3, metavar=("ALGO", "ENV", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sb3_run:
        algo, env, seed = args.sb3_run
        print(json.dumps(run_sb3(algo, env, int(seed), ENVS[env])))
        return 0
    if not args.table:
        jobs = [(lib, algo, env, seed) for env in args.envs for lib in args.libs
                for algo in (args.algos if lib == "rlrun" else args.sb3_algos) for seed in args.seeds]
        with ThreadPoolExecutor(args.jobs) as pool:
            for line in pool.map(lambda job: one(*job, args.out, args.results), jobs):
                print(line, flush=True)
    print(updates_table() + "\n\n" + table(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
