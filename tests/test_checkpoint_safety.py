"""Opening a checkpoint runs no code: the data-only format, the consent for modules a config names,
the converter of the first format, and the fixture run that every later version must resume."""

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlrun
from rlrun.checkpoint import CheckpointError, EarlierFormat, as_data, from_data, load_checkpoint, save_checkpoint
from rlrun.env_state import env_state, restore_env_state
from tests.conftest import REPO, RLRUN

EVAL = [sys.executable, "-m", "rlrun.eval_command"]
UPGRADE = [sys.executable, "-m", "rlrun.upgrade_checkpoint"]
# A checkpoint of format 2 (a PPO-Clip CartPole run of 256 steps, networks [8]) as the data it holds,
# in text: every later version must read and resume it.
FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_format2.json"


def run(argv: list, cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (REPO, extra_path) if p is not None)
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> Path:
    """A small CartPole run (its own directory, .hydra and checkpoints), copied by each test."""
    tmp = tmp_path_factory.mktemp("safety")
    done = run([*RLRUN, "algo=ppo_clip", "env=CartPole-v1", "total_steps=512", "algo.n_steps=64",
                "progress=off", f"hydra.run.dir={tmp}/run"], tmp)
    assert done.returncode == 0, done.stderr
    return tmp / "run"


def _decoded(value):
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    if isinstance(value, dict):
        if "tensor" in value:
            dtype = getattr(torch, value["dtype"])
            return torch.tensor(value["tensor"], dtype=dtype).reshape(value["shape"])
        if "tuple" in value:
            return tuple(_decoded(v) for v in value["tuple"])
        return {key: _decoded(v) for key, v in value["dict"].items()}
    return value


def fixture_run(tmp_path: Path) -> Path:
    """The format-2 fixture as a run directory: its overrides and checkpoints/last.pt."""
    fixture = json.loads(FIXTURE.read_text())
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in fixture["overrides"]))
    (run_dir / "checkpoints").mkdir()
    torch.save(_decoded(fixture["checkpoint"]), run_dir / "checkpoints" / "last.pt")
    return run_dir


def copy_run(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(source, target)
    return target


class Payload:
    """Unpickling it runs exec: what a checkpoint made to attack its reader holds."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_numpy_values_round_trip_through_the_data_format():
    state = {"a": np.arange(4, dtype=np.uint32), "b": np.float64(1.5), "c": (np.zeros((2, 2), np.float32), [True, None]),
             "d": {"x": np.array([1, -2], np.int8)}, "rng": np.random.get_state()}
    back = from_data(as_data(state))
    assert back["a"].dtype == np.uint32 and np.array_equal(back["a"], state["a"])
    assert isinstance(back["b"], np.float64) and back["b"] == 1.5
    assert back["c"][0].dtype == np.float32 and back["c"][1] == [True, None]
    assert back["d"]["x"].dtype == np.int8 and np.array_equal(back["d"]["x"], [1, -2])
    np.random.set_state(back["rng"])  # numpy takes the restored state
    with pytest.raises(TypeError, match="dtype"):
        as_data({"s": np.array(["text"])})


def test_an_env_restored_from_its_data_state_continues_bit_exactly():
    env = gym.make("CartPole-v1")
    env.reset(seed=3)
    for _ in range(7):
        env.step(env.action_space.sample())
    state = from_data(as_data(env_state(env)))  # through the checkpoint's conversion
    fresh = gym.make("CartPole-v1")
    fresh.reset(seed=99)
    assert restore_env_state(fresh, state)
    for action in [0, 1, 1, 0, 1] * 10:
        a, b = env.step(action), fresh.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        if a[2] or a[3]:
            assert np.array_equal(env.reset()[0], fresh.reset()[0])  # the same RNG draws next
    assert not restore_env_state(gym.make("Pendulum-v1"), state)  # another wrapper chain: left alone


def test_a_checkpoint_that_would_run_code_is_refused_by_eval_load_and_resume(cartpole_run, tmp_path):
    run_dir = copy_run(cartpole_run, tmp_path)
    marker = tmp_path / "payload-ran"
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    state["payload"] = Payload(marker)
    torch.save(state, last)
    for argv in ([*EVAL, run_dir], [*RLRUN, f"resume={run_dir}"], [*UPGRADE, "--help"]):
        proc = run(argv, tmp_path)
        if argv[-1] != "--help":
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
            assert "pickled objects" in proc.stderr and "rlrun-upgrade-checkpoint" in proc.stderr
    with pytest.raises(EarlierFormat):
        rlrun.load(run_dir)
    assert not marker.exists()


def test_modules_a_config_names_need_consent(cartpole_run, tmp_path):
    """A data-only checkpoint whose config would import a module: refused by rlrun-eval, rlrun.load
    and resume= until the user consents; with consent the module is imported."""
    (tmp_path / "evil_module.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').write('ran')\n")
    run_dir = copy_run(cartpole_run, tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    state["config"]["env"]["register"] = "evil_module"
    save_checkpoint(last, state)
    overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + "- env.register=evil_module\n")

    proc = run([*EVAL, run_dir], tmp_path, extra_path=tmp_path)
    assert proc.returncode == 2 and "'evil_module' (env.register)" in proc.stderr and "--trust-modules" in proc.stderr
    proc = run([*RLRUN, f"resume={run_dir}", "total_steps=1024"], tmp_path, extra_path=tmp_path)
    assert proc.returncode == 2 and "'evil_module' (env.register)" in proc.stderr and "--trust-modules" in proc.stderr
    with pytest.raises(CheckpointError, match="trust_modules=True"):
        rlrun.load(run_dir)
    assert not (tmp_path / "imported").exists()

    proc = run([*RLRUN, f"resume={run_dir}", "total_steps=1024", "--trust-modules"], tmp_path, extra_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "imported").exists()
    assert json.loads((run_dir / "summary.json").read_text())["steps_done"] == 1024


def test_saved_overrides_that_set_hydra_keys_are_refused(cartpole_run, tmp_path):
    run_dir = copy_run(cartpole_run, tmp_path)
    overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + "- +hydra.callbacks.x._target_=builtins.print\n")
    proc = run([*RLRUN, f"resume={run_dir}"], tmp_path)
    assert proc.returncode == 2 and "which a run's overrides never do" in proc.stderr, proc.stderr


def test_a_sweep_whose_saved_hydra_settings_name_code_needs_consent(tmp_path):
    sweep = tmp_path / "sweep"
    done = run([*RLRUN, "-m", "seed=0", "total_steps=256", "progress=off", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert done.returncode == 0, done.stderr
    saved = (sweep / "multirun.yaml").read_text()
    (sweep / "multirun.yaml").write_text(saved.replace("    hydra:\n", "    hydra:\n    - +hydra.callbacks.x._target_=builtins.print\n", 1))
    proc = run([*RLRUN, f"resume={sweep}"], tmp_path)
    assert proc.returncode == 2 and "names code for Hydra to call" in proc.stderr and "--trust-modules" in proc.stderr, \
        proc.stderr + (sweep / "multirun.yaml").read_text()


def test_a_first_format_checkpoint_is_converted_and_resumes(cartpole_run, tmp_path):
    """The first format: numpy arrays as pickled objects and the envs pickled whole."""
    run_dir = copy_run(cartpole_run, tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    del state["format"]
    envs = [gym.make("CartPole-v1") for _ in range(2)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
    state["collector"]["envs"] = pickle.dumps(envs)
    torch.save(state, last)
    proc = run([*RLRUN, f"resume={run_dir}", "total_steps=1024"], tmp_path)
    assert proc.returncode == 2 and "rlrun-upgrade-checkpoint" in proc.stderr

    proc = run([*UPGRADE, run_dir], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "unpickles" in proc.stderr and "converted" in proc.stdout
    assert (run_dir / "checkpoints" / "last.pt.format1").is_file()
    converted = load_checkpoint(last)
    assert converted["collector"]["envs"][0][-1]["class"] == "CartPoleEnv"
    proc = run([*UPGRADE, last], tmp_path)
    assert proc.returncode == 0 and "already in the current format" in proc.stdout
    proc = run([*RLRUN, f"resume={run_dir}", "total_steps=1024"], tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_the_fixture_run_of_format_2_still_loads_and_resumes(tmp_path):
    """tests/fixtures/checkpoint_format2.json holds what rlrun wrote when checkpoints got format 2;
    every later version must read and resume it."""
    run_dir = fixture_run(tmp_path)
    policy = rlrun.load(run_dir)
    assert policy.act(np.zeros(4, np.float32)) in (0, 1)
    proc = run([*RLRUN, f"resume={run_dir}", "total_steps=512"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 512


def test_a_checkpoint_of_an_earlier_version_is_laid_over_todays_schema(tmp_path):
    """Keys added since it was written take their defaults, keys since removed are dropped: it
    loads and resumes."""
    run_dir = fixture_run(tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)  # as written, without the reader's filling in
    for section, key in ((None, "solved_window"), ("algo", "max_grad_norm"), ("env", "sign_rewards")):
        del (state["config"][section] if section else state["config"])[key]
    state["config"]["algo"]["a_knob_since_removed"] = 3
    torch.save(state, last)
    config = load_checkpoint(last)["config"]
    assert config["solved_window"] == 20 and config["algo"]["max_grad_norm"] == 0.5
    assert config["env"]["sign_rewards"] is False and "a_knob_since_removed" not in config["algo"]
    proc = run([*RLRUN, f"resume={run_dir}", "total_steps=512"], tmp_path)
    assert proc.returncode == 0, proc.stderr
