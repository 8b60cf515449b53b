"""`rlrun-eval`: run a trained policy from a checkpoint for full episodes and report its return.

    rlrun-eval <run dir or checkpoint .pt> [--episodes 10] [--stochastic] [--seed N] [--video DIR] [--device cpu]
               [--max-episode-steps N] [--out FILE]

The actor is rebuilt from the checkpoint's config and weights, and observations are normalised
with the statistics saved at training time (never updated here). Actions are deterministic by
default: the most probable action (Categorical) or the mean (Gaussian), clipped to the action
bounds; ``--stochastic`` samples from the policy instead. The seed defaults to the run's seed +
10000, so evaluation episodes differ from the training ones. Prints one line per episode and
``mean ± std``, and writes ``eval.json`` into the run directory (``--out`` elsewhere). ``--video DIR``
records every episode as an .mp4 (needs moviepy: ``pip install 'rlrun[video]'``). An episode ends at
the env's time limit, or at ``--max-episode-steps`` (default 10,000 for an env that has none).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import OmegaConf

from rlrun import envs
from rlrun.checkpoint import load_checkpoint
from rlrun.config import DEVICES
from rlrun.envs import check_env_id, check_spaces
from rlrun.errors import RlrunError
from rlrun.evaluation import DEFAULT_MAX_STEPS, EVAL_SEED_OFFSET, episode_cap, evaluate
from rlrun.policy import checkpoint_path, from_checkpoint
from rlrun.process_setup import resolve_device

PROG = "rlrun-eval"


def make_eval_env(env_cfg: Any, video_dir: Path | None = None, name_prefix: str = "eval") -> gym.Env:
    """One env of the run's ``env`` config, as in training; every episode recorded with ``video_dir``."""
    check_env_id(env_cfg.id, env_cfg.get("register"))
    if video_dir is not None:
        # rgb_array frames need no display; without this, pygame's SDL prints an XDG_RUNTIME_DIR error.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = envs.make_env(env_cfg, render_mode="rgb_array" if video_dir is not None else None)
    check_spaces(env.observation_space, env.action_space, env_cfg.id)
    if video_dir is not None:
        env = gym.wrappers.RecordVideo(env, str(video_dir), episode_trigger=lambda _: True,
                                       name_prefix=name_prefix, disable_logger=True)
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Evaluate a trained rlrun policy from its checkpoint.")
    parser.add_argument("path", type=Path, help="run directory (uses checkpoints/last.pt) or a checkpoint .pt file")
    parser.add_argument("--episodes", type=int, default=10, help="number of full episodes (default 10)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mode")
    parser.add_argument("--seed", type=int, default=None, help=f"env and sampling seed (default: the run's seed + {EVAL_SEED_OFFSET})")
    parser.add_argument("--video", type=Path, default=None, metavar="DIR", help="record every episode as .mp4 into DIR")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--max-episode-steps", type=int, default=None, metavar="N",
                        help=f"end an episode after N steps (default: the env's time limit, else {DEFAULT_MAX_STEPS})")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="where to write the JSON report (default <run dir>/eval.json)")
    parser.add_argument("--trust-modules", action="store_true",
                        help="import the modules the checkpoint's env config names (env.register, env.id=module:Id, "
                             "env.wrappers) outside gymnasium and rlrun's env packages: runs their code")
    return parser.parse_args(argv)


def error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.episodes < 1:
        return error("--episodes must be >= 1")
    if args.device not in DEVICES:
        return error(f"--device {args.device!r} is not one of {', '.join(DEVICES)}")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        return error(f"--seed {args.seed} is not allowed: it must be in [0, 2**32 - 1]")
    if args.max_episode_steps is not None and args.max_episode_steps < 1:
        return error("--max-episode-steps must be >= 1")
    if args.video is not None and importlib.util.find_spec("moviepy") is None:
        return error("--video needs moviepy: pip install 'rlrun[video]'")
    path, run_dir = checkpoint_path(args.path)
    try:
        checkpoint = load_checkpoint(path)
        cfg = OmegaConf.create(checkpoint["config"])
        refusal = None if args.trust_modules else envs.consent_needed(cfg.env, f"checkpoint {path}", "add --trust-modules")
        if refusal:
            return error(refusal)
        device = resolve_device(args.device)
        prefix = f"{cfg.algo.name}-{cfg.env.id}-step{checkpoint['steps']}"
        env = make_eval_env(cfg.env, args.video, prefix)
    except RlrunError as err:
        return error(str(err))
    except Exception as err:  # noqa: BLE001 - e.g. an env that takes no render_mode
        if args.video is None:
            raise
        return error(f"--video: {cfg.env.id} cannot be made for recording ({type(err).__name__}: {err}); "
                     f"it needs render_mode='rgb_array'")
    try:
        policy = from_checkpoint(checkpoint, env.observation_space, env.action_space, device, path)
    except ValueError as err:
        env.close()
        return error(str(err))

    seed = args.seed if args.seed is not None else int(cfg.seed) + EVAL_SEED_OFFSET
    max_steps = args.max_episode_steps
    if max_steps is None and (cap := episode_cap(env)) is not None:
        max_steps = cap
        print(f"{cfg.env.id} has no time limit: episodes end after {max_steps} steps (--max-episode-steps)")
    mode = "stochastic" if args.stochastic else "deterministic"
    try:
        results = evaluate(policy, env, args.episodes, not args.stochastic, seed, max_steps)
    except Exception as err:  # noqa: BLE001 - a render that raises or returns no frame
        if args.video is None:
            env.close()
            raise
        with contextlib.suppress(Exception):
            env.close()
        return error(f"--video: recording {cfg.env.id} failed ({type(err).__name__}: {err}); its render() must "
                     f"return rgb_array frames")
    env.close()  # RecordVideo writes the last video here
    for i, (ret, length) in enumerate(results, 1):
        print(f"episode {i}: return {ret:.2f}, length {length}")
    returns, lengths = [r for r, _ in results], [n for _, n in results]
    mean, std = float(np.mean(returns)), float(np.std(returns))
    print(f"{mean:.2f} ± {std:.2f} return over {len(results)} episodes ({mode})")
    report = {"checkpoint": str(path), "steps": checkpoint["steps"], "env": cfg.env.id, "mode": mode,
              "seed": seed, "episodes": len(results), "mean": mean, "std": std,
              "returns": returns, "lengths": lengths}
    out = args.out if args.out is not None else run_dir / "eval.json"
    if args.out is None and out.is_symlink():
        return error(f"{out} is a symbolic link; rlrun-eval does not write through links in a run folder "
                     f"(--out FILE writes the report elsewhere)")
    try:
        out.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as err:
        return error(f"cannot write {out} ({err.strerror}); --out FILE writes the report elsewhere")
    if args.video is not None:
        print(f"videos in {args.video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
