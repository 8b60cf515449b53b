"""Two-iteration CLI runs of each algorithm: its TensorBoard tags exist and hold finite values."""

import json
import math

import pytest

from rlrun.algos.registry import algorithms
from rlrun.logger import CUSTOM_SCALARS
from tests.conftest import read_scalars

COMMON = {"rollout/ep_return", "rollout/ep_return_mean", "time/fps", "loss/policy", "loss/value", "policy/entropy",
          "value/explained_variance", "Returns/train", "Returns/train_mean"}
EPISODE_TAGS = {"rollout/ep_return", "rollout/ep_return_mean", "Returns/train", "Returns/train_mean"}
TAGS = {
    "ppo_clip": {"ppo_clip/clip_fraction", "ppo_clip/clip_eps", "ppo_clip/kl", "ppo_clip/approx_kl", "train/learning_rate"},
    "trpo": {"trpo/backtracks", "trpo/step_accepted", "trpo/cg_iters", "trpo/cg_residual",
             "trpo/surrogate_improvement", "trpo/step_norm", "trpo/max_kl", "trpo/kl", "trpo/updates",
             "trpo/steps_rejected"},
    "ppo_penalty": {"train/learning_rate", "ppo_penalty/kl_coef", "ppo_penalty/kl_target", "ppo_penalty/adapt",
                    "ppo_penalty/kl", "ppo_penalty/approx_kl", "ppo_penalty/updates", "ppo_penalty/lambda_decreases",
                    "ppo_penalty/lambda_increases"},
    "acktr": {"acktr/kl", "acktr/step_scale", "acktr/step_clipped", "acktr/step_norm", "acktr/damping",
              "acktr/factor_eig_min", "acktr/factor_eig_max", "acktr/max_kl", "acktr/eta_max",
              "acktr/backtracks", "acktr/step_accepted", "acktr/updates", "acktr/steps_clipped",
              "acktr/steps_rejected"},
    "a2c": {"a2c/kl", "a2c/grad_norm", "train/learning_rate"},
}
ENVS = ("CartPole-v1", "Pendulum-v1")
TWO_ITERATIONS = {  # n_steps x num_envs x 2; every registered algorithm not listed takes the CartPole row's sizes
    ("CartPole-v1", "trpo"): ["algo.n_steps=256", "env.num_envs=2", "total_steps=1024"],
    ("Pendulum-v1", "ppo_clip"): ["algo.n_steps=200", "env.num_envs=4", "total_steps=1600"],
    ("Pendulum-v1", "trpo"): ["algo.n_steps=200", "env.num_envs=2", "total_steps=800"],
    ("Pendulum-v1", "ppo_penalty"): ["algo.n_steps=200", "env.num_envs=4", "total_steps=1600"],
    ("Pendulum-v1", "acktr"): ["algo.n_steps=200", "env.num_envs=4", "total_steps=1600"],
    ("CartPole-v1", "a2c"): ["algo.n_steps=16", "env.num_envs=4", "total_steps=128", "log_every=1"],
    ("Pendulum-v1", "a2c"): ["algo.n_steps=100", "env.num_envs=2", "total_steps=400", "log_every=1"],
    # the continuous-control setting: several K-FAC critic steps, fresh factors, no entropy bonus
    ("Pendulum-v1", "acktr_cont"): ["algo.n_steps=400", "env.num_envs=2", "total_steps=1600", "algo.stat_decay=0",
                                    "algo.inv_every=1", "algo.critic_epochs=5", "algo.ent_coef=0"],
}
DEFAULT_TWO_ITERATIONS = ["algo.n_steps=64", "env.num_envs=8", "total_steps=1024"]
SDE = ["algo.use_sde=true", "algo.sde_sample_freq=4"]  # "<algo>_sde": gSDE, with the Pendulum row's sizes
CASES = sorted({*((env, algo) for algo in algorithms() for env in ENVS), *TWO_ITERATIONS,
                *(("Pendulum-v1", f"{algo}_sde") for algo in algorithms())})



def test_each_algorithm_chart_matches_one_algorithm_only():
    """Every custom-scalars chart but the returns names tags of its own algorithm's namespace only
    (anchored regexes over <algo>/), so a sweep's chart never mixes algorithms; the returns charts
    match every algorithm's tags."""
    titles = {registration.title: name for name, registration in algorithms().items()}
    for category, charts in CUSTOM_SCALARS.items():
        for title, (_, regexes) in charts.items():
            if category == "returns":
                assert all(rx.startswith("^Returns/") for rx in regexes), title
                continue
            name = titles[category]
            assert all(rx.startswith(f"^{name}/") and rx.endswith("$") for rx in regexes), (category, title)


# Written only by ACKTR's joint update (algo.share_encoder=true, image observations); its metrics
# are read in tests/algos/test_acktr.py.
ACKTR_JOINT_TAGS = {"acktr/value_kl", "acktr/joint_kl"}


def test_the_charts_of_every_algorithm_name_tags_their_runs_write():
    for name, tags in TAGS.items():
        written = tags | COMMON | (ACKTR_JOINT_TAGS if name == "acktr" else set())
        for title, chart_tags in algorithms()[name].charts.items():
            assert set(chart_tags) <= written, (name, title)


def tags_of(algo: str) -> set[str]:
    """The tags an algorithm's update writes: listed above, or, for one not listed, those its
    charts name (its registration), ACKTR's joint-mode tags aside."""
    charted = {tag for tags in algorithms()[algo].charts.values() for tag in tags} - ACKTR_JOINT_TAGS
    return TAGS.get(algo, charted)


@pytest.mark.parametrize("env, algo", CASES)
def test_two_iterations_log_the_algorithm_tags(run_rlrun, env, algo):
    case, algo = algo, algo.removesuffix("_cont").removesuffix("_sde")
    sizes = TWO_ITERATIONS.get((env, case), TWO_ITERATIONS.get((env, algo), DEFAULT_TWO_ITERATIONS))
    res = run_rlrun(f"algo={algo}", f"env={env}", "progress=off", "hydra.run.dir=run", *sizes,
                    *(SDE if case.endswith("_sde") else []))
    assert res.returncode == 0, res.stderr
    run_dir = run_rlrun.cwd / "run"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 2 and summary["status"] == "completed"
    scalars = read_scalars(run_dir)
    wanted = (COMMON | tags_of(algo)) - (EPISODE_TAGS if env == "Pendulum-v1" and algo == "trpo" else set())
    assert wanted <= set(scalars), wanted - set(scalars)
    # TensorBoard lists tag groups by name (capitals first): TIME SERIES opens on the returns
    groups = sorted({tag.split("/")[0] for tag in scalars})
    assert groups[0] == "Returns", groups
    kl_tags = [tag for tag in scalars if tag.endswith("kl") and not tag.endswith(("max_kl", "approx_kl", "value_kl", "joint_kl"))]
    assert kl_tags == [f"{algo}/kl"]  # one tag for the exact KL of the step
    for tag in wanted:
        assert all(math.isfinite(v) for _, v in scalars[tag]), tag
    if algo in ("trpo", "acktr"):  # the trust region holds: the measured KL never exceeds the logged bound
        accepted = [v for _, v in scalars[f"{algo}/step_accepted"]]
        for (_, kl), ok, (_, bound) in zip(scalars[f"{algo}/kl"], accepted, scalars[f"{algo}/max_kl"]):
            assert not ok or kl <= bound + 1e-9



@pytest.mark.parametrize("log_every, iterations", [(None, [100, 200, 250]), (60, [60, 120, 180, 240, 250])])
def test_update_metrics_are_written_every_log_every_iterations_and_at_the_last(run_rlrun, log_every, iterations):
    """A2C's iterations are 8 envs x 5 steps: by default its metrics and diagnostics are written
    every 100 iterations (SB3's log_interval) and at the end; the episode returns every iteration."""
    extra = [] if log_every is None else [f"log_every={log_every}"]
    res = run_rlrun("algo=a2c", "env=CartPole-v1", "env.num_envs=8", "total_steps=10000", "progress=off",
                    "hydra.run.dir=run", *extra)
    assert res.returncode == 0, res.stderr
    scalars = read_scalars(run_rlrun.cwd / "run")
    for tag in ("a2c/kl", "loss/policy", "time/fps"):
        assert [step for step, _ in scalars[tag]] == [40 * i for i in iterations], tag
    assert len(scalars["rollout/ep_return"]) > 100


def custom_scalars_layout(run_dir) -> dict[str, list[str]]:
    """The CUSTOM SCALARS layout a run wrote: category -> chart titles."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    (event,) = acc.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    return {category.title: [chart.title for chart in category.chart] for category in layout.category}


@pytest.mark.parametrize("algo, extra, categories", [
    ("ppo_clip", [], {"returns", "PPO-Clip"}),
    ("acktr", ["eval_every=256", "eval_episodes=1"], {"returns", "ACKTR"}),
])
def test_a_run_lays_out_only_the_charts_of_what_it_logs(run_rlrun, algo, extra, categories):
    """No "Matches (0)" card: the returns (evaluation only with eval_every) and the charts of the
    run's own algorithm whose tags it writes; ACKTR on discrete actions has no log-std chart."""
    res = run_rlrun(f"algo={algo}", "env=CartPole-v1", "total_steps=1024", "algo.n_steps=32", "env.num_envs=4",
                    "progress=off", "hydra.run.dir=run", *extra)
    assert res.returncode == 0, res.stderr
    run_dir = run_rlrun.cwd / "run"
    layout = custom_scalars_layout(run_dir)
    assert set(layout) == categories
    assert ("deterministic evaluation (eval_every)" in layout["returns"]) == bool(extra)
    scalars = set(read_scalars(run_dir))
    for category, titles in layout.items():
        for title in titles:
            regexes = CUSTOM_SCALARS[category][title][1]
            assert all(rx.strip("^$") in scalars for rx in regexes), (category, title)
    if algo == "acktr":  # its joint-mode chart shares acktr/kl and max_kl, but needs share_encoder's tags
        assert not any("share_encoder" in title for title in layout["ACKTR"])
