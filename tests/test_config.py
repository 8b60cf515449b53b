"""Every algo x env config composes into the typed schema; range checks name the bad key."""

import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from hydra.errors import ConfigCompositionException

from rlrun.config import CONF_DIR
from rlrun.launch.arguments import register_env_ids
from rlrun.algos.registry import algorithms
from rlrun.config import ConfigError, register_configs, validate

register_configs()
ALGOS = list(algorithms())
ENVS = sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml"))


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_config_dir_is_the_top_level_conf():
    assert (CONF_DIR / "config.yaml").exists()
    assert {"ppo_clip"} <= set(ALGOS)
    assert {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "MountainCarContinuous-v0",
            "LunarLander-v3", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"} <= set(ENVS)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("env", ENVS)
def test_every_algo_env_pair_composes_and_validates(algo, env):
    cfg = compose_cfg(f"algo={algo}", f"env={env}")
    assert cfg.algo.name == algo and cfg.env.id == env
    validate(cfg)
    OmegaConf.to_object(cfg)  # every value fits its dataclass type


def test_tuned_file_overrides_algo_defaults():
    cfg = compose_cfg("algo=ppo_clip", "env=CartPole-v1")
    assert cfg.algo.n_steps == 32 and cfg.algo.batch_size == 256 and cfg.algo.lr_schedule == "linear"


def test_any_gymnasium_id_gets_generic_env_config():
    register_env_ids(["env=FrozenLake-v1"])
    cfg = compose_cfg("env=FrozenLake-v1")
    assert cfg.env.id == "FrozenLake-v1" and cfg.env.num_envs >= 1


def test_wrong_type_and_misspelled_key_are_refused():
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg("algo.clip_eps=abc")
    assert "could not be converted to Float" in str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg("algo.clip_epss=0.1")
    assert "Key 'clip_epss' not in 'PPOClipConfig'" in str(err.value.__cause__)


@pytest.mark.parametrize("override, key", [
    ("total_steps=-5", "total_steps"),
    ("total_steps=0", "total_steps"),
    ("algo.clip_eps=0", "algo.clip_eps"),
    ("algo.gamma=1.5", "algo.gamma"),
    ("algo.gamma=0", "algo.gamma"),
    ("env.num_envs=0", "env.num_envs"),
    ("device=tpu", "device"),
    ("env.vectorization=threads", "env.vectorization"),
])
def test_range_errors_name_the_key(override, key):
    cfg = compose_cfg(override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)


def test_job_directory_suffixes_are_short_stable_and_cut_between_overrides():
    from rlrun.config import MAX_SUFFIX_BYTES, job_dir_suffix

    assert job_dir_suffix("") == ""
    assert job_dir_suffix("algo.clip_eps=0.1") == "_algo.clip_eps=0.1"
    long = ",".join(f"algo.key{i}=0.{i}123456789012345" for i in range(8))
    other = long.replace("0.7123", "0.7124")
    suffix = job_dir_suffix(long)
    assert len(suffix.encode()) <= MAX_SUFFIX_BYTES and suffix == job_dir_suffix(long) != job_dir_suffix(other)
    head = suffix[1:suffix.index(",...")]
    assert long.startswith(head + ",")  # whole overrides only
    assert len(job_dir_suffix("é" * 200).encode()) <= MAX_SUFFIX_BYTES  # cut on a character boundary


def test_a_never_solved_run_scores_the_steps_and_seconds_it_ran():
    from rlrun.run_summary import objective_value

    summary = {"solved_step": None, "solved_wall_s": None, "steps_done": 4096, "wall_s": 12.5, "final_return": None}
    assert objective_value(summary, "solved_step") == 4096.0
    assert objective_value(summary, "solved_wall_s") == 12.5
    assert objective_value({**summary, "solved_step": 2048}, "solved_step") == 2048.0
    assert math.isnan(objective_value(summary, "final_return"))  # no episode finished: that trial alone fails


def test_a_job_folder_is_algo_env_seed_each_one_bounded_path_component():
    from rlrun.config import JOB_DIR_DEPTH, MAX_JOB_DIR_BYTES, job_dir_name, sweep_dir_of

    assert job_dir_name("ppo_clip", "CartPole-v1", 0, "") == "ppo_clip/CartPole-v1/seed0"
    name = job_dir_name("trpo", "ALE/Pong-v5", 2, "algo.x=../../escape,env.kwargs.p=a\\b")
    assert name == "trpo/ALE-Pong-v5/seed2_algo.x=..-..-escape,env.kwargs.p=a-b"
    assert job_dir_name("..", ".", 0, "") == "_../_./seed0"  # no level climbs out of the sweep
    long = job_dir_name("acktr", "x" * 300, 0, "")
    parts = long.split("/")
    assert len(parts) == JOB_DIR_DEPTH and len(parts[1].encode()) <= MAX_JOB_DIR_BYTES and parts[1].startswith("xxx")
    assert long != job_dir_name("acktr", "x" * 301, 0, "")  # the hash of the whole keeps names apart
    assert sweep_dir_of(Path("/s") / job_dir_name("a2c", "MinAtar/Breakout-v1", 1, "")) == Path("/s")
