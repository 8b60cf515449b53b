"""rlrun vs Stable-Baselines3 / sb3-contrib, side by side, same hyperparameters and threads.

    pip install -e ".[bench]"
    python benchmarks/vs_sb3.py --algo ppo_clip --env CartPole-v1 --seeds 0 1 2 3 4
    python benchmarks/vs_sb3.py --algo trpo --env Pendulum-v1 --seeds 0 1 2 --total-steps 50000

Runs alternate (rlrun seed 0, peer seed 0, rlrun seed 1, ...) in fresh subprocesses with one
torch thread each. Reported per framework: env steps/s of the whole training loop (rollout +
update, excluding start-up), wall time and env steps until the mean of the last 20 training
episode returns reaches the env's threshold, and the final mean return. The peer is configured
from rlrun's composed config (`rlrun --cfg job`), so both use the same hyperparameters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

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
        env = VecNormalize(env, norm_obs=e["normalize_obs"], norm_reward=e["normalize_reward"], gamma=a["gamma"])
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
    print(json.dumps({"fps": model.num_timesteps / wall, "wall_s": wall, "final_return": float(np.mean(final)),
                      "solved_step": cb.solved_step, "solved_wall_s": cb.solved_wall,
                      "update_s_per_iter": sum(update_times) / len(update_times),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
''')


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
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", choices=["ppo_clip", "trpo"], default="ppo_clip")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--total-steps", type=int, default=None)
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE", help="extra rlrun overrides")
    args = p.parse_args()
    overrides = list(args.overrides) + ([f"total_steps={args.total_steps}"] if args.total_steps else [])
    peer_name = "SB3 PPO" if args.algo == "ppo_clip" else "sb3-contrib TRPO"
    ours, peers = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            r = run_rlrun(args.algo, args.env, seed, overrides, Path(tmp))
            cfg = composed_config(args.algo, args.env, seed, overrides)
            q = run_peer(cfg, r["threshold"])
            ours.append(r)
            peers.append(q)
            print(f"seed {seed}: rlrun {r['fps']:.0f} steps/s (solved {r['solved_step']} in {r['solved_wall_s']} s, final {r['final_return']:.1f}) | "
                  f"{peer_name} {q['fps']:.0f} steps/s (solved {q['solved_step']} in "
                  f"{None if q['solved_wall_s'] is None else round(q['solved_wall_s'], 2)} s, final {q['final_return']:.1f})", flush=True)
    print(f"\n{args.algo} vs {peer_name} on {args.env}, seeds {args.seeds}, {ours[0]['total_steps']} steps, 1 torch thread")
    print(f"{'':24} {'rlrun':>10} {peer_name:>18} {'ratio':>7}")
    for key, label in [("fps", "median env steps/s"), ("solved_wall_s", "median wall to solve (s)"),
                       ("solved_step", "median steps to solve"), ("final_return", "median final return"),
                       ("update_s_per_iter", "update s / iteration"), ("peak_rss_mb", "peak memory (MB)")]:
        a, b = med(ours, key), med(peers, key)
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        digits = 4 if key == "update_s_per_iter" else 1
        print(f"{label:24} {('-' if a is None else f'{a:.{digits}f}'):>10} {('-' if b is None else f'{b:.{digits}f}'):>18} {ratio:>7}")
    print(f"solved: rlrun {sum(r['solved_step'] is not None for r in ours)}/{len(ours)}, "
          f"{peer_name} {sum(q['solved_step'] is not None for q in peers)}/{len(peers)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
