"""benchmarks/generic_defaults.py: the untuned defaults make dozens of updates in 100k steps, and
the table of kept results is read from hand-made files whose answer is known."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import generic_defaults  # noqa: E402


def test_every_algorithms_defaults_make_dozens_of_updates_in_100k_steps():
    counts = generic_defaults.updates_in(100_000)
    assert all(n >= 24 for n in counts.values()), counts
    assert counts["ppo_clip"] == counts["sb3 ppo"] == 48  # 8 envs x 256 and SB3's 1 env x 2,048


def test_the_table_lists_each_seed_and_the_mean(tmp_path):
    for lib, algo, finals in (("rlrun", "ppo_clip", [0.9, 0.7]), ("sb3", "ppo", [0.1, 0.3])):
        for seed, final in enumerate(finals):
            path = tmp_path / lib / algo / "DictReach-v0" / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"lib": lib, "algo": algo, "env": "DictReach-v0", "seed": seed,
                                        "budget": 100_000, "final_return": final, "updates": 48}))
    rows = generic_defaults.table(tmp_path).splitlines()
    assert rows[2] == "| DictReach-v0 | 100k | rlrun | PPO-Clip | 48 | 0.90 / 0.70 | 0.80 |"
    assert rows[3] == "| DictReach-v0 | 100k | SB3 | PPO | 48 | 0.10 / 0.30 | 0.20 |"
