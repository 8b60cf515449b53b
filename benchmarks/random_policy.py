"""R_random: the mean return of a uniformly random policy on each shipped environment.

    python benchmarks/random_policy.py                    # every conf/env/*.yaml, 30 episodes each
    python benchmarks/random_policy.py --envs Hopper-v5 --episodes 100

The normalised score (R - R_random) / (R_zoo - R_random), needs it. Each env is made as
training makes it (``envs.make_env`` with the env file's time limit and kwargs), seeded once, and
stepped with ``action_space.sample()`` (the action space seeded too) for full episodes. Writes
``benchmarks/results/random_policy.json`` ({env: {mean, std, episodes, seed}}) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlrun.config import EnvConfig  # noqa: E402
from rlrun.envs import EnvError, make_env  # noqa: E402


def env_config(env_id: str) -> EnvConfig:
    """The env file's settings (``conf/env/<id>.yaml``) over the schema defaults."""
    cfg = OmegaConf.structured(EnvConfig(id=env_id))
    path = ROOT / "conf" / "env" / f"{env_id}.yaml"
    if path.is_file():
        values = OmegaConf.load(path)
        values.pop("defaults", None)
        cfg = OmegaConf.merge(cfg, values)
    return cfg


def random_returns(env_id: str, episodes: int, seed: int) -> list[float]:
    env = make_env(env_config(env_id))
    env.action_space.seed(seed)
    returns = []
    for i in range(episodes):
        env.reset(seed=seed if i == 0 else None)
        ret, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            ret, done = ret + float(reward), terminated or truncated
        returns.append(ret)
    env.close()
    return returns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=sorted(p.stem for p in (ROOT / "conf" / "env").glob("*.yaml")))
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "random_policy.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    print(f"{'env':28s} {'mean':>10s} {'std':>9s}")
    for env_id in args.envs:
        try:
            returns = random_returns(env_id, args.episodes, args.seed)
        except EnvError as err:
            print(f"{env_id:28s} skipped: {err}")
            continue
        results[env_id] = {"mean": float(np.mean(returns)), "std": float(np.std(returns)),
                           "episodes": args.episodes, "seed": args.seed}
        print(f"{env_id:28s} {np.mean(returns):10.1f} {np.std(returns):9.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
