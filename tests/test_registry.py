"""One registration per algorithm: the table, the Hydra group built from it, the checks beside the
fields, the tuned files that name themselves, and the switch that leaves them out."""

from dataclasses import asdict, fields
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlrun.algos.registry import AlgoConfig, algorithms, catalogue, configs
from rlrun.config import CONF_DIR, ConfigError, register_configs, tuned_values, validate

register_configs()


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("name", list(algorithms()))
def test_each_algorithm_registers_its_config_and_class_once(name):
    registration = algorithms()[name]
    assert issubclass(registration.config, AlgoConfig) and registration.config().name == name
    for attribute in ("update", "state_dict", "load_state_dict"):
        assert callable(getattr(registration.algorithm, attribute)), attribute
    undocumented = [f.name for f in fields(registration.config) if not f.metadata.get("doc")]
    assert not undocumented, f"{name}: fields without a doc: {undocumented}"
    if registration.trust_region_key is not None:
        assert registration.trust_region_key in {f.name for f in fields(registration.config)}
    assert catalogue()[name][0] == registration.summary  # what --help shows, read without importing


@pytest.mark.parametrize("name", list(algorithms()))
def test_the_algo_group_is_the_registered_config_with_its_defaults(name):
    cfg = compose_cfg(f"algo={name}", "env=CartPole-v1", "tuned=none")
    assert asdict(OmegaConf.to_object(cfg.algo)) == asdict(algorithms()[name].config())


@pytest.mark.parametrize("name", list(algorithms()))
def test_the_config_read_without_importing_is_the_modules_own(name):
    """configs() runs the config's source lines apart from the module (no torch): the same fields,
    types, defaults, docs and range checks as the imported module's class."""
    read, imported = configs()[name], algorithms()[name].config
    assert read.__qualname__ == imported.__qualname__
    assert [(f.name, f.type, f.default, f.metadata["doc"]) for f in fields(read)] == \
        [(f.name, f.type, f.default, f.metadata["doc"]) for f in fields(imported)]
    assert asdict(read()) == asdict(imported())
    probes = (-1, 0, 0.5, 1, 2, 1e9, float("nan"), "constant", "nope", [64], [0])
    for mine, theirs in zip(fields(read), fields(imported)):
        if theirs.metadata["check"] is None:
            assert mine.metadata["check"] is None, mine.name
            continue
        assert mine.metadata["check"].allowed == theirs.metadata["check"].allowed, mine.name
        for value in probes:
            try:
                expected = theirs.metadata["check"].ok(value)
            except TypeError:
                continue
            assert mine.metadata["check"].ok(value) == expected, (mine.name, value)
    for method in ("check_combination",):
        assert hasattr(read, method) == hasattr(imported, method)


@pytest.mark.parametrize("override, message", [
    ("algo=acktr algo.eta_max=0", "algo.eta_max=0.0 is not allowed: must be > 0"),
    ("algo=acktr algo.stat_decay=1.0", "algo.stat_decay=1.0 is not allowed: must be in [0, 1)"),
    ("algo=trpo algo.backtrack_coef=1.5", "algo.backtrack_coef=1.5 is not allowed: must be in (0, 1)"),
    ("algo=ppo_clip algo.lr_schedule=cosine", "algo.lr_schedule='cosine' is not allowed: one of constant, linear"),
    ("algo=ppo_penalty algo.kl_tolerance=1", "algo.kl_tolerance=1.0 is not allowed: must be > 1"),
    ("algo=trpo algo.hidden_sizes=[64,0]", "algo.hidden_sizes=[64, 0] is not allowed: every layer size must be >= 1"),
])
def test_the_range_check_beside_each_field_names_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(*override.split()))
    assert str(err.value).startswith(message)


TUNED = sorted(p.relative_to(CONF_DIR / "tuned") for p in (CONF_DIR / "tuned").glob("*/**/*.yaml")
               if p.relative_to(CONF_DIR / "tuned").parts[0] != "zoo")
ZOO = sorted(p.relative_to(CONF_DIR / "tuned" / "zoo") for p in (CONF_DIR / "tuned" / "zoo").glob("*/**/*.yaml"))


@pytest.mark.parametrize("path", TUNED, ids=[p.with_suffix("").as_posix() for p in TUNED])
def test_each_tuned_file_names_itself_and_is_applied(path):
    algo, env = path.parts[0], path.with_suffix("").relative_to(path.parts[0]).as_posix()  # env: MinAtar/Breakout-v1 too
    assert algo in algorithms(), f"conf/tuned/{algo}/ is not a registered algorithm"
    cfg = compose_cfg(f"algo={algo}", f"env={env}")
    assert cfg.tuned_file == f"conf/tuned/{algo}/{env}.yaml"
    values = tuned_values(cfg.tuned_file)
    assert values and "tuned_file" not in values
    for key, value in values.items():
        assert OmegaConf.select(cfg, key) == value, key


@pytest.mark.parametrize("path", ZOO, ids=[p.with_suffix("").as_posix() for p in ZOO])
def test_tuned_zoo_applies_the_zoo_file_beside_the_shipped_one(path):
    from rlrun.launch.arguments import tuned_zoo

    algo, env = path.parts[0], path.with_suffix("").relative_to(path.parts[0]).as_posix()
    assert algo in algorithms() and (CONF_DIR / "tuned" / algo / f"{env}.yaml").is_file()  # the file it stands beside
    argv = tuned_zoo([f"algo={algo}", f"env={env}", "tuned=zoo"])
    assert argv[-1] == f"tuned=zoo/{algo}/{env}"
    cfg = compose_cfg(*argv)
    assert cfg.tuned_file == f"conf/tuned/zoo/{algo}/{env}.yaml"
    for key, value in tuned_values(cfg.tuned_file).items():
        assert OmegaConf.select(cfg, key) == value, key
    assert OmegaConf.to_container(cfg) != OmegaConf.to_container(compose_cfg(f"algo={algo}", f"env={env}"))


def test_tuned_zoo_without_a_zoo_file_or_with_a_sweep_is_one_line():
    from rlrun.launch.arguments import tuned_zoo

    with pytest.raises(ConfigError, match=r"^tuned=zoo: no rl-zoo file for algo=trpo env=CartPole-v1 .*there are: "):
        tuned_zoo(["algo=trpo", "env=CartPole-v1", "tuned=zoo"])
    with pytest.raises(ConfigError, match=r"^tuned=zoo takes one algo, not algo=trpo,ppo_clip"):
        tuned_zoo(["algo=trpo,ppo_clip", "env=Walker2d-v5", "tuned=zoo"])
    assert tuned_zoo(["algo=trpo", "tuned=none"]) == ["algo=trpo", "tuned=none"]
    # without algo=, the default algorithm's file (conf/config.yaml: ppo_clip)
    assert tuned_zoo(["env=HalfCheetah-v5", "tuned=zoo"])[-1] == "tuned=zoo/ppo_clip/HalfCheetah-v5"


def test_tuned_none_leaves_the_tuned_file_out():
    tuned = compose_cfg("algo=ppo_clip", "env=CartPole-v1")
    plain = compose_cfg("algo=ppo_clip", "env=CartPole-v1", "tuned=none")
    assert tuned.tuned_file and plain.tuned_file is None
    assert tuned.algo.n_steps == 32 and plain.algo.n_steps == 256  # conf/tuned/ppo_clip/CartPole-v1.yaml's 32


def test_a_run_logs_the_tuned_file_and_what_it_set(run_rlrun):
    res = run_rlrun("algo=trpo", "env=Pendulum-v1", "total_steps=256", "algo.n_steps=128", "progress=off",
                    "hydra.run.dir=run")
    assert res.returncode == 0, res.stderr
    log = (run_rlrun.cwd / "run" / "rlrun.log").read_text()
    assert "tuned values from conf/tuned/trpo/Pendulum-v1.yaml" in log and "algo.gamma=0.9" in log
    cfg = OmegaConf.load(run_rlrun.cwd / "run" / ".hydra" / "config.yaml")
    assert cfg.tuned_file == "conf/tuned/trpo/Pendulum-v1.yaml" and cfg.algo.n_steps == 128  # the command line wins
    assert "algo.n_steps=1024 (overridden: 128)" in log and "total_steps=300000 (overridden: 256)" in log
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_rlrun.cwd / "run"), size_guidance={"tensors": 0})
    acc.Reload()
    text = acc.Tensors("tuned/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "algo.n_steps: 1024  # overridden on the command line: 128" in text
    res = run_rlrun("algo=trpo", "env=Pendulum-v1", "total_steps=256", "progress=off", "tuned=none", "--cfg", "job")
    assert res.returncode == 0 and "tuned_file: null" in res.stdout and "gamma: 0.99" in res.stdout


def test_conf_has_no_algo_yaml_left():
    """The algo group is built from the registrations; YAML only where it adds something."""
    assert not (Path(CONF_DIR) / "algo").exists()


def test_a_config_that_needs_its_module_is_read_by_importing_it(tmp_path, monkeypatch):
    """A config whose default is a name imported from elsewhere cannot run on its own: configs()
    imports that one module instead of failing every command."""
    import ast
    import sys

    from rlrun.algos import registry

    source = ("from dataclasses import dataclass\n"
              "from rlrun.algos.registry import AlgoConfig, Registration\n"
              "from rlrun.knobs import knob\n"
              "from rlrun.core.losses import normalize as DEFAULT_NAME\n"
              "@dataclass\nclass OddConfig(AlgoConfig):\n"
              "    name: str = knob('odd', 'the algorithm')\n"
              "    label: str = knob(DEFAULT_NAME.__name__, 'a default from another module')\n"
              "class Odd:\n    pass\n"
              "REGISTRATION = Registration(config=OddConfig, algorithm=Odd, title='Odd', summary='odd')\n")
    package = tmp_path / "oddpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "odd.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "__package__", "oddpkg")
    monkeypatch.setattr(registry, "algorithm_sources", lambda: {"odd": ast.parse(source)})
    registry.configs.cache_clear()
    try:
        with pytest.raises(NameError):
            registry.config_from_source("odd", ast.parse(source))
        config = registry.configs()["odd"]
        assert config().label == "normalize" and "oddpkg.odd" in sys.modules
    finally:
        registry.configs.cache_clear()
        for name in ("oddpkg.odd", "oddpkg"):
            sys.modules.pop(name, None)


def test_a_composed_config_pickles_and_unpickles_in_a_fresh_process():
    """Its algo node names the config class that configs() read; plain pickle finds it again
    (rlrun.algos.configs), as a launcher or an async env's worker needs."""
    import pickle
    import subprocess
    import sys

    cfg = compose_cfg("algo=trpo", "env=Pendulum-v1")
    data = pickle.dumps(cfg)
    code = ("import pickle, sys; cfg = pickle.loads(sys.stdin.buffer.read()); "
            "from omegaconf import OmegaConf; print(type(OmegaConf.to_object(cfg.algo)).__name__, cfg.algo.max_kl)")
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True).stdout
    assert out.decode().split() == ["TRPOConfig", "0.01"]
