"""Every algorithm runs through a Dict observation, a Tuple of an image and a nested Dict,
MultiDiscrete actions and MultiBinary actions (tests/space_envs.py): two iterations each, in-process, finite metrics, actions the env accepts.
That they learn there is measured by benchmarks/spaces.py."""

import math

import pytest

import rlrun
from rlrun.algos.registry import algorithms
from tests import space_envs  # noqa: F401  (registers the envs)
from tests.conftest import read_scalars

ENVS = ("DictMatch-v0", "TupleImageMatch-v0", "MultiDiscreteMatch-v0", "MultiBinaryMatch-v0")


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", list(algorithms()))
def test_two_iterations_on_each_space(tmp_path, monkeypatch, algo, env):
    monkeypatch.chdir(tmp_path)
    summary = rlrun.train([f"algo={algo}", f"env=tests.space_envs:{env}", "total_steps=256", "algo.n_steps=32",
                           "env.num_envs=4", "progress=off", "tuned=none"])
    assert summary["status"] == "completed" and summary["steps_done"] == 256
    scalars = read_scalars(tmp_path / summary["run_dir"])
    for tag in (f"{algo}/kl", "policy/entropy", "loss/policy", "rollout/ep_return"):
        assert tag in scalars and all(math.isfinite(v) for _, v in scalars[tag]), tag
    policy = rlrun.load(summary["run_dir"])
    env_instance = space_envs.__dict__[env.removesuffix("-v0")]()
    obs, _ = env_instance.reset(seed=0)
    assert env_instance.action_space.contains(policy.act(obs))


@pytest.mark.parametrize("message, extra", [
    ('Box2D is not installed, you can install it by run `pip install swig` followed by `pip install "gymnasium[box2d]"`',
     "box2d"),
    ('MuJoCo is not installed, run `pip install "gymnasium[mujoco]"`', "mujoco"),
    ("ale_py is not installed", "atari"),
])
def test_a_missing_env_dependency_names_the_one_extra_that_installs_it(message, extra):
    from rlrun.envs import missing_extra

    line = missing_extra("X-v0", message)
    assert f"pip install -e '.[{extra}]'" in line and "\n" not in line
    install = line.split("): ", 1)[1]  # after gymnasium's own message
    assert [e for e in ("box2d", "mujoco", "atari") if f"[{e}]" in install] == [extra]
