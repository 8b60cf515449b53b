"""Evaluation during training (eval_every): the schedule, the best policy, summary and resume state."""

import json
import math
import subprocess
import sys

import numpy as np

import pytest
import torch
from gymnasium import spaces

from rlrun.evaluation import PeriodicEvaluator
from tests.conftest import read_scalars
from tests.test_evaluate import ConstantEnv
from rlrun.checkpoint import load_checkpoint


class ScriptedActor(torch.nn.Module):
    """A Gaussian policy whose mean is set from outside: the ConstantEnv return does not depend on it,
    so the test drives the evaluation returns through the env's reward instead."""

    def __init__(self):
        super().__init__()
        self.mean = torch.nn.Parameter(torch.zeros(1))

    def act(self, obs, deterministic=False, generator=None):
        assert deterministic  # evaluations take the mode
        return self.mean.expand(len(obs), 1)


class RewardIsAction(ConstantEnv):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float(action[0]), terminated, truncated, info


def test_schedule_best_and_summary():
    env = RewardIsAction(spaces.Box(-10.0, 10.0, (1,), np.float32))
    actor, evaluator = ScriptedActor(), PeriodicEvaluator(env, every=1000, episodes=2, seed=3)
    assert not evaluator.due(999) and evaluator.due(1000)
    results = []
    for steps, mean in [(1024, 1.0), (2048, 2.0), (3500, -1.0)]:
        actor.mean.data.fill_(mean)
        results.append(evaluator.run(actor, None, steps))
    assert [r.mean_return for r in results] == [3.0, 6.0, -3.0]  # 3 steps of reward = the mean action
    assert [r.is_best for r in results] == [True, True, False]
    assert evaluator.next_step == 4000 and not evaluator.due(3999)
    assert evaluator.summary() == {"eval_final_return": -3.0, "eval_final_std": 0.0, "eval_final_step": 3500,
                                   "eval_best_return": 6.0, "eval_best_step": 2048}
    restored = PeriodicEvaluator(env, every=1000, episodes=2, seed=3)
    restored.load_state_dict(evaluator.state_dict())
    assert restored.summary() == evaluator.summary() and restored.next_step == 4000
    empty = PeriodicEvaluator(env, every=1000, episodes=2, seed=3).summary()
    assert set(empty.values()) == {None}


def test_run_logs_evaluations_keeps_best_and_the_final_one_matches_rlrun_eval(run_rlrun):
    res = run_rlrun("env=CartPole-v1", "total_steps=5000", "algo.n_steps=64", "eval_every=2000", "eval_episodes=3",
                    "progress=off", "hydra.run.dir=run")
    assert res.returncode == 0, res.stderr
    run_dir = run_rlrun.cwd / "run"
    scalars = read_scalars(run_dir)
    steps = [s for s, _ in scalars["eval/mean_return"]]
    assert steps == [2048, 4096, 5120]  # every 2000 steps (first iteration past each), and the final policy
    assert len(scalars["eval/std_return"]) == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    values = [v for _, v in scalars["eval/mean_return"]]
    assert summary["eval_final_step"] == 5120 and summary["eval_final_return"] == pytest.approx(values[-1])
    assert summary["eval_best_return"] == pytest.approx(max(values))
    assert summary["eval_best_step"] == steps[int(np.argmax(values))]
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert best["steps"] == summary["eval_best_step"]
    # rlrun-eval replays the same seed: the final evaluation is reproduced from last.pt
    proc = subprocess.run([sys.executable, "-m", "rlrun.eval_command", str(run_dir), "--episodes", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run_dir / "eval.json").read_text())["mean"] == pytest.approx(summary["eval_final_return"])


def test_evaluation_is_off_by_default(run_rlrun):
    res = run_rlrun("env=CartPole-v1", "total_steps=1024", "algo.n_steps=64", "progress=off", "hydra.run.dir=run")
    assert res.returncode == 0, res.stderr
    run_dir = run_rlrun.cwd / "run"
    assert "eval/mean_return" not in read_scalars(run_dir)
    assert not (run_dir / "checkpoints" / "best.pt").exists()
    assert "eval_best_return" not in json.loads((run_dir / "summary.json").read_text())
    assert math.isfinite(json.loads((run_dir / "summary.json").read_text())["final_return"])
