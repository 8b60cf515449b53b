"""Two-iteration CLI runs of each algorithm: its TensorBoard tags exist and hold finite values."""

import json
import math

import pytest

from tests.conftest import read_scalars

COMMON = {"rollout/ep_return", "time/fps", "loss/policy", "loss/value", "policy/entropy", "policy/kl",
          "value/explained_variance", "train/learning_rate"}
TAGS = {
    "ppo_clip": {"policy/approx_kl", "policy/clip_fraction"},
    "trpo": {"trpo/backtracks", "trpo/step_accepted", "trpo/cg_iters", "trpo/cg_residual",
             "trpo/surrogate_improvement", "trpo/step_norm", "trpo/max_kl"},
    "ppo_penalty": {"ppo_penalty/kl_coef", "ppo_penalty/kl_target", "ppo_penalty/adapt", "policy/approx_kl"},
    "acktr": {"acktr/step_scale", "acktr/step_clipped", "acktr/step_norm", "acktr/damping",
              "acktr/factor_eig_min", "acktr/factor_eig_max"},
}
TWO_ITERATIONS = {  # n_steps x num_envs x 2
    ("CartPole-v1", "ppo_clip"): ["algo.n_steps=64", "env.num_envs=8", "total_steps=1024"],
    ("CartPole-v1", "trpo"): ["algo.n_steps=256", "env.num_envs=2", "total_steps=1024"],
    ("CartPole-v1", "ppo_penalty"): ["algo.n_steps=64", "env.num_envs=8", "total_steps=1024"],
    ("CartPole-v1", "acktr"): ["algo.n_steps=64", "env.num_envs=8", "total_steps=1024"],
    ("Pendulum-v1", "ppo_clip"): ["algo.n_steps=200", "env.num_envs=4", "total_steps=1600"],
    ("Pendulum-v1", "trpo"): ["algo.n_steps=200", "env.num_envs=2", "total_steps=800"],
    ("Pendulum-v1", "ppo_penalty"): ["algo.n_steps=200", "env.num_envs=4", "total_steps=1600"],
    ("Pendulum-v1", "acktr"): ["algo.n_steps=200", "env.num_envs=4", "total_steps=1600"],
}


@pytest.mark.parametrize("env, algo", sorted(TWO_ITERATIONS))
def test_two_iterations_log_the_algorithm_tags(run_rlrun, env, algo):
    res = run_rlrun(f"algo={algo}", f"env={env}", "progress=off", "hydra.run.dir=run", *TWO_ITERATIONS[(env, algo)])
    assert res.returncode == 0, res.stderr
    run_dir = run_rlrun.cwd / "run"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 2 and summary["status"] == "completed"
    scalars = read_scalars(run_dir)
    wanted = (COMMON | TAGS[algo]) - ({"rollout/ep_return"} if env == "Pendulum-v1" and algo == "trpo" else set())
    assert wanted <= set(scalars), wanted - set(scalars)
    for tag in wanted:
        assert all(math.isfinite(v) for _, v in scalars[tag]), tag
    if algo == "trpo":
        accepted = [v for _, v in scalars["trpo/step_accepted"]]
        for (_, kl), ok in zip(scalars["policy/kl"], accepted):
            assert not ok or kl <= scalars["trpo/max_kl"][0][1] + 1e-9
