"""Env steps per second of PPO-Clip on Atari Breakout: rlrun against Stable-Baselines3's CnnPolicy
at the same settings, one after the other on the same machine.

    python benchmarks/atari_speed.py --sb3-python /path/to/venv-with-sb3/bin/python [--steps 10240] [--device cuda]

Both train ALE/Breakout-v5 (frameskip 1 in the env, the usual preprocessing on top: 30 no-ops,
frame skip 4 with max-pooling, 84x84 grey, 4 stacked frames, sign-clipped rewards and a lost life
ending bootstrapping) with the PPO paper's Atari setting: 8 sync envs x 128 steps, 3 epochs of
minibatch 256, Adam 2.5e-4, clip 0.1, vf_coef 1, ent_coef 0.01. rlrun: ``rlrun algo=ppo_clip
env=ALE/Breakout-v5`` (its tuned file), wall time from its summary.json. SB3:
``make_atari_env`` + ``VecFrameStack(4)`` + ``PPO("CnnPolicy")``, wall time of ``learn``.
Both share one CNN between actor and critic (rlrun: the tuned file's ``algo.share_encoder``), run
once for both heads in the losses and in the pass over the batch. Both use the same torch threads:
``--threads`` (default 0, torch's default of one per core, which SB3 keeps and rlrun's Atari tuned
file sets; rlrun's own default elsewhere is 1).

The SB3 interpreter needs ``stable-baselines3``, ``ale-py`` and ``gymnasium`` (install them in
a separate environment: ``python -m venv v && v/bin/pip install torch==2.13.0 stable-baselines3
ale-py opencv-python-headless``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SB3_SCRIPT = """
import sys, time
import ale_py, gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack
import torch
gym.register_envs(ale_py)
steps, device, threads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if threads > 0:
    torch.set_num_threads(threads)
env = VecFrameStack(make_atari_env("ALE/Breakout-v5", n_envs=8, seed=0, env_kwargs={"frameskip": 1}), n_stack=4)
model = PPO("CnnPolicy", env, n_steps=128, n_epochs=3, batch_size=256, learning_rate=2.5e-4, clip_range=0.1,
            vf_coef=1.0, ent_coef=0.01, gamma=0.99, gae_lambda=0.95, seed=0, device=device, verbose=0)
start = time.perf_counter()
model.learn(steps)
print(steps / (time.perf_counter() - start))
"""


def rlrun_fps(steps: int, device: str, threads: int, out: Path) -> float:
    run_dir = out / "rlrun"
    subprocess.run([sys.executable, "-m", "rlrun.cli", "algo=ppo_clip", "env=ALE/Breakout-v5", f"total_steps={steps}",
                    "seed=0", f"device={device}", f"torch_threads={threads}", "progress=off", "checkpoint_every=0", "eval_every=0",
                    f"hydra.run.dir={run_dir}"],
                   cwd=ROOT, check=True, capture_output=True)
    return json.loads((run_dir / "summary.json").read_text())["fps"]


def sb3_fps(python: str, steps: int, device: str, threads: int) -> float:
    res = subprocess.run([python, "-c", SB3_SCRIPT, str(steps), device, str(threads)], check=True, capture_output=True,
                         text=True)
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sb3-python", required=True, help="an interpreter with stable-baselines3 and ale-py")
    parser.add_argument("--steps", type=int, default=10_240, help="env steps per run (10 iterations of 8 x 128)")
    parser.add_argument("--repeats", type=int, default=2, help="rlrun and SB3 runs alternate this many times")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both train the networks")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of both (0: torch's default, one per core)")
    args = parser.parse_args()
    ours, theirs = [], []
    for _ in range(args.repeats):  # alternating, so that a change in the machine's load hits both
        with tempfile.TemporaryDirectory() as tmp:
            ours.append(rlrun_fps(args.steps, args.device, args.threads, Path(tmp)))
        theirs.append(sb3_fps(args.sb3_python, args.steps, args.device, args.threads))
    print(f"PPO-Clip, ALE/Breakout-v5, 8 envs x 128 steps, {args.steps} env steps a run, {args.device}, "
          f"torch threads {args.threads or 'default'}, env steps/s per run:")
    print(f"rlrun (one shared CNN)         {' / '.join(f'{v:.1f}' for v in ours)}")
    print(f"SB3 CnnPolicy (one shared CNN) {' / '.join(f'{v:.1f}' for v in theirs)}")


if __name__ == "__main__":
    main()
