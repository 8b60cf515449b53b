"""Seconds per update of an algorithm on one Atari-sized batch (4x84x84 uint8 frames, random), with
its ALE/Breakout-v5 tuned file: what the shared CNN and ACKTR's K-FAC cost, without the envs.

    python benchmarks/pixel_update.py --algo ppo_clip acktr [--iterations 4] [--threads 2] [algo.key=value ...]

The batch is one iteration's: env.num_envs x algo.n_steps frames of the tuned file (PPO-Clip
8 x 128, ACKTR 16 x 20). Extra arguments are config overrides, e.g. ``algo.share_encoder=false``
(separate actor and critic CNNs) or ``algo.kfac_dtype=float64``. The first update is reported
apart: it includes ACKTR's first eigendecomposition, which then runs every ``algo.inv_every``
updates; the mean of the rest leaves it out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlrun.algos.registry import algorithms  # noqa: E402
from rlrun.config import CONF_DIR, register_configs, validate  # noqa: E402
from rlrun.core.batch import Batch  # noqa: E402
from rlrun.networks import make_networks  # noqa: E402


def time_updates(algo_name: str, overrides: list[str], iterations: int) -> tuple[int, float, list[float]]:
    """(batch size, first update's seconds, the other updates' seconds)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"algo={algo_name}", "env=ALE/Breakout-v5", *overrides])
    validate(cfg)  # the CLI's checks, knob combinations included
    n = cfg.env.num_envs * cfg.algo.n_steps
    torch.manual_seed(0)
    actor, critic = make_networks(cfg.algo, spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(4))
    algo = algorithms()[algo_name].algorithm(OmegaConf.to_object(cfg.algo), actor, critic, 0)
    frames = torch.randint(0, 256, (n, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        pi = actor(frames)
        actions = pi.sample()
        log_probs = pi.log_prob(actions)
    batch = Batch(frames, actions, log_probs, torch.zeros(n), torch.randn(n), torch.randn(n))
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        algo.update(batch, progress=0.0)
        times.append(time.perf_counter() - start)
    return n, times[0], times[1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", nargs="+", default=["ppo_clip", "acktr"])
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the runs' torch_threads)")
    args, overrides = p.parse_known_args()
    torch.set_num_threads(args.threads)
    register_configs()
    for name in args.algo:
        n, first, rest = time_updates(name, overrides, args.iterations)
        shown = " ".join(overrides) or "the tuned file"
        print(f"{name:10s} {shown}: {n} frames, first update {first:.2f} s, then {np.mean(rest):.2f} s "
              f"(min {min(rest):.2f}) over {len(rest)}", flush=True)


if __name__ == "__main__":
    main()
