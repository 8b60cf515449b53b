"""rlrun vs Stable-Baselines3 / sb3-contrib, side by side, same hyperparameters and threads.

    pip install -e ".[bench]"
    python benchmarks/vs_sb3.py --algo ppo_clip --env CartPole-v1 --seeds 0 1 2 3 4
    python benchmarks/vs_sb3.py --algo trpo --env Pendulum-v1 --seeds 0 1 --total-steps 50000
    python benchmarks/vs_sb3.py --algo a2c --env CartPole-v1 --seeds 0 1 --total-steps 100000
    python benchmarks/vs_sb3.py --startup --repeats 5
    python benchmarks/vs_sb3.py --suite --json benchmarks/results/vs_sb3_suite.json
    python benchmarks/vs_sb3.py --suite --quick          # tiny runs: checks the script, not the speed

Runs alternate (rlrun seed 0, peer seed 0, rlrun seed 1, ...) in fresh subprocesses with one
torch thread each. Reported per framework: env steps/s of the whole training loop (rollout +
update, excluding start-up), wall time and env steps until the mean of the last 20 training
episode returns reaches the env's threshold, and the final mean return. The peer is configured
from rlrun's composed config (`rlrun --cfg job`), so both use the same hyperparameters.

--startup: whole-process CPU time (user + sys of the child) of a 256-step PPO-Clip CartPole-v1
run (the tuned file's 8 envs x 32 steps: exactly one update) against SB3's equivalent, alternating;
then the wall time of `rlrun algo=trpo env=Pendulum-v1 --cfg job` against `rlrun --help`.

--suite: the judged comparisons in order (SUITE below, then --startup), and one summary table of
the ratios rlrun / peer with their targets. Hopper-v5 runs with eval_every=0: the peer does not
evaluate, so rlrun's periodic evaluation would otherwise count against its env steps/s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RLRUN = Path(sys.executable).parent / "rlrun"  # the console script a user runs

PEER = textwrap.dedent('''
    import json, sys, time
    import numpy as np, torch
    torch.set_num_threads(1)
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    cfg, total, threshold = json.loads(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    a, e = cfg["algo"], cfg["env"]
    lin = lambda v, kind: (lambda rem: v * rem) if kind == "linear" else v
    env = make_vec_env(e["id"], n_envs=e["num_envs"], seed=cfg["seed"])
    if e["normalize_obs"] or e["normalize_reward"]:
        from stable_baselines3.common.vec_env import VecNormalize
        env = VecNormalize(env, norm_obs=e["normalize_obs"], norm_reward=e["normalize_reward"], gamma=a["gamma"],
                           clip_obs=e["clip_obs"], clip_reward=e["clip_reward"])
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[a["activation"]]
    pk = dict(net_arch=dict(pi=a["hidden_sizes"], vf=a["hidden_sizes"]), activation_fn=act,
              log_std_init=a["log_std_init"], ortho_init=a["ortho_init"])
    common = dict(n_steps=a["n_steps"], gamma=a["gamma"], gae_lambda=a["gae_lambda"], seed=cfg["seed"],
                  policy_kwargs=pk, device="cpu", normalize_advantage=a["normalize_advantage"], verbose=0)
    if a["name"] == "ppo_clip":
        from stable_baselines3 import PPO
        model = PPO("MlpPolicy", env, batch_size=a["batch_size"], n_epochs=a["n_epochs"],
                    learning_rate=lin(a["learning_rate"], a["lr_schedule"]), clip_range=lin(a["clip_eps"], a["clip_schedule"]),
                    ent_coef=a["ent_coef"], vf_coef=a["vf_coef"], max_grad_norm=a["max_grad_norm"], target_kl=a["target_kl"], **common)
    elif a["name"] == "a2c":
        from stable_baselines3 import A2C
        if a["optimizer"] == "rmsprop":  # SB3's own choice with use_rms_prop, but with rlrun's alpha
            pk.update(optimizer_class=torch.optim.RMSprop,
                      optimizer_kwargs=dict(alpha=a["rms_alpha"], eps=a["rms_eps"], weight_decay=0))
        else:
            pk.update(optimizer_class=torch.optim.Adam, optimizer_kwargs=dict(eps=a["rms_eps"]))
        model = A2C("MlpPolicy", env, learning_rate=lin(a["learning_rate"], a["lr_schedule"]), ent_coef=a["ent_coef"],
                    vf_coef=a["vf_coef"], max_grad_norm=a["max_grad_norm"], rms_prop_eps=a["rms_eps"],
                    use_rms_prop=a["optimizer"] == "rmsprop", **common)
    else:
        from sb3_contrib import TRPO
        model = TRPO("MlpPolicy", env, batch_size=a["batch_size"], learning_rate=a["critic_lr"],
                     n_critic_updates=a["critic_epochs"], cg_max_steps=a["cg_iters"], cg_damping=a["cg_damping"],
                     line_search_shrinking_factor=a["backtrack_coef"], line_search_max_iter=a["backtrack_iters"],
                     target_kl=a["max_kl"], **common)
    class Solved(BaseCallback):
        solved_step = solved_wall = None
        def _on_step(self):
            buf = [ep["r"] for ep in self.model.ep_info_buffer][-20:]
            if self.solved_step is None and threshold is not None and len(buf) == 20 and np.mean(buf) >= threshold:
                self.solved_step, self.solved_wall = self.num_timesteps, time.perf_counter() - start
            return True
    cb = Solved()
    update_times = []
    train = model.train
    def timed_train():
        t0 = time.perf_counter()
        train()
        update_times.append(time.perf_counter() - t0)
    model.train = timed_train
    start = time.perf_counter()
    model.learn(total, callback=cb)
    wall = time.perf_counter() - start
    import resource
    final = [ep["r"] for ep in model.ep_info_buffer][-20:]
    print(json.dumps({"fps": model.num_timesteps / wall, "wall_s": wall,
                      "final_return": float(np.mean(final)) if final else None,
                      "solved_step": cb.solved_step, "solved_wall_s": cb.solved_wall,
                      "update_s_per_iter": sum(update_times) / len(update_times),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
''')

# SB3's side of --startup: conf/tuned/ppo_clip/CartPole-v1.yaml, 8 envs x 32 steps, learn(256) = one update.
STARTUP_PEER = textwrap.dedent('''
    import torch
    torch.set_num_threads(1)
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gae_lambda=0.8, gamma=0.98,
                learning_rate=lambda rem: 1e-3 * rem, clip_range=lambda rem: 0.2 * rem, ent_coef=0.0,
                seed=0, device="cpu", verbose=0)
    model.learn(256)
''')

PEER_NAMES = {"ppo_clip": "SB3 PPO", "a2c": "SB3 A2C", "trpo": "sb3-contrib TRPO"}

# The judged comparisons of --suite: (label, algo, env, seeds, total_steps (None: the tuned file's),
# extra overrides, the summary key compared, and the target on rlrun / peer).
SUITE = [
    ("PPO-Clip CartPole-v1 wall to solve", "ppo_clip", "CartPole-v1", [0, 1, 2, 3, 4], None, [], "solved_wall_s", "<=", 0.5),
    ("PPO-Clip Hopper-v5 env steps/s", "ppo_clip", "Hopper-v5", [0, 1], 100000, ["eval_every=0"], "fps", ">=", 3.0),
    ("TRPO CartPole-v1 wall to solve", "trpo", "CartPole-v1", [0, 1, 2, 3, 4], None, [], "solved_wall_s", "<=", 0.35),
    ("TRPO Pendulum-v1 env steps/s", "trpo", "Pendulum-v1", [0, 1], 50000, [], "fps", ">=", 2.0),
    ("A2C CartPole-v1 env steps/s", "a2c", "CartPole-v1", [0, 1], 100000, [], "fps", ">=", 2.0),
]
STARTUP_TARGET = ("<=", 0.6)
CFG_JOB_TARGET = ("<=", 3.0)
QUICK_STEPS = 1000  # --quick: every training run this long (at least one iteration), one seed, one repeat


def composed_config(algo: str, env: str, seed: int, overrides: list[str]) -> dict:
    import yaml

    out = subprocess.run([sys.executable, "-m", "rlrun.cli", f"algo={algo}", f"env={env}", f"seed={seed}", *overrides,
                          "--cfg", "job", "--resolve"], capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)


def run_rlrun(algo: str, env: str, seed: int, overrides: list[str], tmp: Path) -> dict:
    run_dir = tmp / f"rlrun_{algo}_{env}_{seed}"
    subprocess.run([sys.executable, "-m", "rlrun.cli", f"algo={algo}", f"env={env}", f"seed={seed}", "progress=off",
                    "torch_threads=1", f"hydra.run.dir={run_dir}", *overrides], check=True, capture_output=True)
    return json.loads((run_dir / "summary.json").read_text())


def run_peer(cfg: dict, threshold: float | None) -> dict:
    out = subprocess.run([sys.executable, "-c", PEER, json.dumps(cfg), str(cfg["total_steps"]), json.dumps(threshold)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def med(rows: list[dict], key: str) -> float | None:
    """The median over the runs. For ``solved_step`` and ``solved_wall_s`` a run that never solved
    counts as slower than every run that did (infinite), so that leaving it out cannot flatter the
    median; None when the median itself is such a run."""
    if key.startswith("solved_"):
        vals = [math.inf if r.get(key) is None else r[key] for r in rows]
    else:
        vals = [r[key] for r in rows if r.get(key) is not None]
    median = statistics.median(vals) if vals else None
    return None if median is None or math.isinf(median) else median


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def compare(algo: str, env: str, seeds: list[int], overrides: list[str], tmp: Path) -> tuple[list[dict], list[dict]]:
    """rlrun and its peer on each seed, alternating; one line per seed."""
    peer_name = PEER_NAMES[algo]
    ours, peers = [], []
    for seed in seeds:
        r = run_rlrun(algo, env, seed, overrides, tmp)
        cfg = composed_config(algo, env, seed, overrides)
        q = run_peer(cfg, r["threshold"])
        ours.append(r)
        peers.append(q)
        print(f"seed {seed}: rlrun {r['fps']:.0f} steps/s (solved {r['solved_step']} in {fmt(r['solved_wall_s'], 2)} s, "
              f"final {fmt(r['final_return'], 1)}) | {peer_name} {q['fps']:.0f} steps/s (solved {q['solved_step']} in "
              f"{fmt(q['solved_wall_s'], 2)} s, final {fmt(q['final_return'], 1)})", flush=True)
    return ours, peers


def print_comparison(algo: str, env: str, seeds: list[int], ours: list[dict], peers: list[dict]) -> None:
    peer_name = PEER_NAMES[algo]
    print(f"\n{algo} vs {peer_name} on {env}, seeds {seeds}, {ours[0]['total_steps']} steps, 1 torch thread")
    print(f"{'':24} {'rlrun':>10} {peer_name:>18} {'ratio':>7}")
    for key, label in [("fps", "median env steps/s"), ("solved_wall_s", "median wall to solve (s)"),
                       ("solved_step", "median steps to solve"), ("final_return", "median final return"),
                       ("update_s_per_iter", "update s / iteration"), ("peak_rss_mb", "peak memory (MB)")]:
        a, b = med(ours, key), med(peers, key)
        digits = 4 if key == "update_s_per_iter" else 1
        print(f"{label:24} {fmt(a, digits):>10} {fmt(b, digits):>18} {fmt(ratio(a, b), 2):>7}")
    print(f"solved: rlrun {sum(r['solved_step'] is not None for r in ours)}/{len(ours)}, "
          f"{peer_name} {sum(q['solved_step'] is not None for q in peers)}/{len(peers)}\n")


def child_cost(cmd: list[str]) -> tuple[float, float]:
    """(CPU s, wall s) of one fresh subprocess: user + sys from RUSAGE_CHILDREN before and after it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def startup_cost(repeats: int, tmp: Path) -> list[dict]:
    """A 256-step PPO-Clip CartPole-v1 run (one update) of rlrun and of SB3, alternating."""
    rows = []
    for i in range(repeats):
        run_dir = tmp / f"startup_{i}"
        cpu, wall = child_cost([str(RLRUN), "algo=ppo_clip", "env=CartPole-v1", "total_steps=256", "progress=off",
                                "torch_threads=1", f"hydra.run.dir={run_dir}"])
        iterations = json.loads((run_dir / "summary.json").read_text())["iterations"]
        assert iterations == 1, f"rlrun's start-up run did {iterations} updates, not 1"
        rows.append({"framework": "rlrun", "repeat": i, "cpu_s": cpu, "wall_s": wall})
        cpu, wall = child_cost([sys.executable, "-c", STARTUP_PEER])
        rows.append({"framework": "sb3", "repeat": i, "cpu_s": cpu, "wall_s": wall})
        print(f"start-up {i}: rlrun {rows[-2]['cpu_s']:.2f} s CPU | SB3 PPO {cpu:.2f} s CPU", flush=True)
    return rows


def cfg_job_cost(repeats: int) -> list[dict]:
    """Wall time of `rlrun algo=trpo env=Pendulum-v1 --cfg job` and of `rlrun --help`, alternating."""
    rows = []
    for i in range(repeats):
        _, wall = child_cost([str(RLRUN), "algo=trpo", "env=Pendulum-v1", "--cfg", "job"])
        rows.append({"command": "cfg_job", "repeat": i, "wall_s": wall})
        _, wall = child_cost([str(RLRUN), "--help"])
        rows.append({"command": "help", "repeat": i, "wall_s": wall})
        print(f"cfg job {i}: {rows[-2]['wall_s']:.2f} s | --help {wall:.2f} s", flush=True)
    return rows


def startup_ratios(startup_rows: list[dict], cfg_rows: list[dict]) -> tuple[dict, dict]:
    """Prints the two start-up tables; returns their summary rows."""
    ours = [r for r in startup_rows if r["framework"] == "rlrun"]
    peers = [r for r in startup_rows if r["framework"] == "sb3"]
    print(f"\nstart-up: PPO-Clip CartPole-v1, 256 steps (one update), {len(ours)} run(s) each, fresh processes")
    print(f"{'':24} {'rlrun':>10} {'SB3 PPO':>18} {'ratio':>7}")
    for key, label in [("cpu_s", "median CPU user+sys (s)"), ("wall_s", "median wall (s)")]:
        a, b = med(ours, key), med(peers, key)
        print(f"{label:24} {fmt(a, 2):>10} {fmt(b, 2):>18} {fmt(ratio(a, b), 2):>7}")
    cpu = {"label": "start-up CPU, 256-step PPO-Clip", "key": "cpu_s", "rlrun": med(ours, "cpu_s"),
           "peer": med(peers, "cpu_s"), "peer_name": "SB3 PPO"}
    job = [r for r in cfg_rows if r["command"] == "cfg_job"]
    helps = [r for r in cfg_rows if r["command"] == "help"]
    a, b = med(job, "wall_s"), med(helps, "wall_s")
    print(f"\nrlrun algo=trpo env=Pendulum-v1 --cfg job vs rlrun --help, {len(job)} run(s) each")
    print(f"{'':24} {'--cfg job':>10} {'--help':>18} {'ratio':>7}")
    print(f"{'median wall (s)':24} {fmt(a, 2):>10} {fmt(b, 2):>18} {fmt(ratio(a, b), 2):>7}\n")
    cfg = {"label": "--cfg job wall vs --help", "key": "wall_s", "rlrun": a, "peer": b, "peer_name": "rlrun --help"}
    return cpu, cfg


def judged(row: dict, op: str, target: float) -> dict:
    row["ratio"] = ratio(row["rlrun"], row["peer"])
    row["target"] = f"{op} {target}"
    row["met"] = None if row["ratio"] is None else (row["ratio"] <= target if op == "<=" else row["ratio"] >= target)
    return row


def run_suite(quick: bool, repeats: int, tmp: Path) -> tuple[list[dict], list[dict]]:
    """Every judged comparison in order; returns (raw per-run rows, summary rows)."""
    rows, summary = [], []
    for label, algo, env, seeds, total, extra, key, op, target in SUITE:
        seeds, total = ([seeds[0]], QUICK_STEPS) if quick else (seeds, total)
        overrides = extra + ([f"total_steps={total}"] if total else [])
        print(f"== {label}: rlrun {algo} vs {PEER_NAMES[algo]} on {env}, seeds {seeds}, {' '.join(overrides) or 'tuned'}",
              flush=True)
        ours, peers = compare(algo, env, seeds, overrides, tmp)
        print_comparison(algo, env, seeds, ours, peers)
        for seed, r, q in zip(seeds, ours, peers):
            rows.append({"comparison": label, "framework": "rlrun", "seed": seed, **r})
            rows.append({"comparison": label, "framework": "peer", "peer": PEER_NAMES[algo], "seed": seed, **q})
        summary.append(judged({"label": label, "key": key, "rlrun": med(ours, key), "peer": med(peers, key),
                               "peer_name": PEER_NAMES[algo]}, op, target))
    print("== start-up", flush=True)
    startup_rows, cfg_rows = startup_cost(repeats, tmp), cfg_job_cost(repeats)
    rows += [{"comparison": "start-up CPU", **r} for r in startup_rows]
    rows += [{"comparison": "--cfg job vs --help", **r} for r in cfg_rows]
    cpu, cfg = startup_ratios(startup_rows, cfg_rows)
    summary += [judged(cpu, *STARTUP_TARGET), judged(cfg, *CFG_JOB_TARGET)]
    return rows, summary


def print_summary(summary: list[dict], quick: bool) -> None:
    print("judged ratios, rlrun / peer (medians)" + ("  [--quick: tiny runs, the figures mean nothing]" if quick else ""))
    print(f"{'comparison':36} {'key':>13} {'rlrun':>9} {'peer':>9} {'ratio':>7} {'target':>8} {'met':>4}")
    for s in summary:
        met = "-" if s["met"] is None else ("yes" if s["met"] else "no")
        print(f"{s['label']:36} {s['key']:>13} {fmt(s['rlrun'], 2):>9} {fmt(s['peer'], 2):>9} "
              f"{fmt(s['ratio'], 2):>7} {s['target']:>8} {met:>4}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", choices=sorted(PEER_NAMES), default="ppo_clip")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--total-steps", type=int, default=None)
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE", help="extra rlrun overrides")
    p.add_argument("--startup", action="store_true", help="start-up CPU and --cfg job wall only (no --algo needed)")
    p.add_argument("--suite", action="store_true", help="every judged comparison and a summary table")
    p.add_argument("--quick", action="store_true", help="with --suite: tiny runs, to smoke-test this script")
    p.add_argument("--repeats", type=int, default=5, help="--startup / --suite: runs of each start-up command")
    p.add_argument("--json", type=Path, default=None, help="--suite: write the raw rows and the summary here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.suite:
            rows, summary = run_suite(args.quick, 1 if args.quick else args.repeats, Path(tmp))
            print_summary(summary, args.quick)
            if args.json:
                commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
                meta = {"date": time.strftime("%Y-%m-%d"), "commit": commit, "cpus": os.cpu_count(), "quick": args.quick}
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps({**meta, "rows": rows, "summary": summary}, indent=2) + "\n")
                print(f"wrote {args.json}")
        elif args.startup:
            startup_ratios(startup_cost(args.repeats, Path(tmp)), cfg_job_cost(args.repeats))
        else:
            overrides = list(args.overrides) + ([f"total_steps={args.total_steps}"] if args.total_steps else [])
            ours, peers = compare(args.algo, args.env, args.seeds, overrides, Path(tmp))
            print_comparison(args.algo, args.env, args.seeds, ours, peers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
