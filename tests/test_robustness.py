"""Nothing lost, nothing silent: kill-and-resume, SIGTERM, NaN guards, determinism, bad input."""

import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import read_scalars, wait_until
from tests.conftest import spawn_rlrun as rlrun
from rlrun.checkpoint import load_checkpoint, save_checkpoint

SMALL = {  # a few seconds per run; several iterations and checkpoints
    "ppo_clip": ["algo.n_steps=64", "algo.batch_size=128", "algo.n_epochs=4"],
    "trpo": ["algo.n_steps=256", "algo.critic_epochs=2"],
    "ppo_penalty": ["algo.n_steps=64", "algo.batch_size=128", "algo.policy_epochs=3", "algo.critic_epochs=3"],
    "acktr": [],
}
# ACKTR's Adam critic (its optimiser and minibatch generator) and the evaluator's state (best so far)
# must survive a resume too.
RESUME_CASES = {**{algo: [f"algo={algo}", *args] for algo, args in SMALL.items()},
                "acktr_adam_critic_eval": ["algo=acktr", "algo.critic_optimizer=adam", "algo.critic_batch_size=64",
                                           "algo.critic_epochs=3", "eval_every=3000", "eval_episodes=2"]}


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def params(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    return {**{f"actor.{k}": v for k, v in ckpt["actor"].items()}, **{f"critic.{k}": v for k, v in ckpt["critic"].items()}}


def training_started(run_dir: Path) -> bool:
    """The run has logged its start line, the last thing before its first iteration."""
    log_file = run_dir / "rlrun.log"
    return log_file.is_file() and "steps -> " in log_file.read_text()


def checkpoint_steps(run_dir: Path) -> int:
    try:
        return load_checkpoint(run_dir / "checkpoints" / "last.pt")["steps"]
    except Exception:  # not there yet, or being replaced right now
        return -1


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_sigkill_after_a_checkpoint_then_resume_gives_bit_identical_parameters(tmp_path, case):
    common = ["env=CartPole-v1", "total_steps=16000", "checkpoint_every=1000", "progress=off", *RESUME_CASES[case]]
    code, err = finish(rlrun(tmp_path, *common, f"hydra.run.dir={tmp_path / 'straight'}"))
    assert code == 0, err

    killed = tmp_path / "killed"
    proc = rlrun(tmp_path, *common, f"hydra.run.dir={killed}")
    wait_until(lambda: checkpoint_steps(killed) >= 2000 or proc.poll() is not None, 120, interval=0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "summary.json").exists()
    at_kill = checkpoint_steps(killed)
    assert 2000 <= at_kill < 16000

    code, err = finish(rlrun(tmp_path, f"resume={killed}"))
    assert code == 0, err
    a, b = params(tmp_path / "straight"), params(killed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    summary = json.loads((killed / "summary.json").read_text())
    straight = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == straight["steps_done"]
    evaluation = ("eval_final_return", "eval_best_return", "eval_best_step")
    assert [summary.get(k) for k in evaluation] == [straight.get(k) for k in evaluation]
    # TensorBoard: every iteration's step exactly once, the same steps as the uninterrupted run
    fps_steps = [s for s, _ in read_scalars(killed)["time/fps"]]
    straight_steps = [s for s, _ in read_scalars(tmp_path / "straight")["time/fps"]]
    assert fps_steps == straight_steps


def test_sigterm_saves_checkpoint_summary_and_every_completed_iteration(tmp_path):
    run_dir = tmp_path / "run"
    proc = rlrun(tmp_path, "total_steps=10000000", "checkpoint_every=0", "progress=off", f"hydra.run.dir={run_dir}")
    assert wait_until(lambda: training_started(run_dir), 60)
    time.sleep(random.uniform(1.0, 2.5))  # a random moment, some iterations in
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "resume with: rlrun resume=" in " ".join((out + err).split())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["iterations"] > 0
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert ckpt["steps"] == summary["steps_done"]
    fps_steps = [s for s, _ in read_scalars(run_dir)["time/fps"]]
    assert len(fps_steps) == summary["iterations"] and fps_steps[-1] == summary["steps_done"]


def test_a_signal_during_the_last_iteration_leaves_a_completed_run(tmp_path):
    """The run finishes the iteration it is in, and that was its last: it is complete, exit 0, and a
    SLURM job signalled then is not requeued. One iteration of 4,000 steps at 1 ms a step."""
    run_dir = tmp_path / "run"
    proc = rlrun(tmp_path, "env=tests.faulty_envs:Paced-v0", "env.num_envs=1", "algo.n_steps=4000",
                 "total_steps=4000", "progress=off", f"hydra.run.dir={run_dir}")
    assert wait_until(lambda: training_started(run_dir), 60)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 4000
    assert checkpoint_steps(run_dir) == 4000


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_process_group_with_async_envs_saves_at_the_step_it_stopped(tmp_path, signum):
    """A terminal's Ctrl-C and SLURM's SIGTERM reach the async env workers too: they must not die
    first and break the pipes before the main process saves."""
    run_dir = tmp_path / "run"
    proc = rlrun(tmp_path, "total_steps=10000000", "checkpoint_every=2048", "progress=off", "env.vectorization=async",
                 "env.num_envs=4", f"hydra.run.dir={run_dir}", start_new_session=True)
    assert wait_until(lambda: training_started(run_dir), 60)
    time.sleep(random.uniform(1.0, 2.5))
    os.killpg(proc.pid, signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in out + err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert checkpoint_steps(run_dir) == summary["steps_done"] > 0


def test_the_same_signal_twice_at_once_is_one_request_to_stop_and_save(tmp_path):
    """GNU timeout sends its signal to the run and then to the run's whole process group, so the run
    receives it twice. Seen with ``timeout -s INT`` on a 16-core machine: the deliveries came apart
    far enough for the second to count as "quit at once", and the run ended without saving. Here the
    second comes 0.2 s after the first, so that Python handles them one by one, within an iteration
    long enough that the run is still in it."""
    run_dir = tmp_path / "run"
    proc = rlrun(tmp_path, "total_steps=10000000", "algo.n_steps=20000", "checkpoint_every=0", "progress=off",
                 f"hydra.run.dir={run_dir}")
    assert wait_until(lambda: training_started(run_dir), 60)
    time.sleep(random.uniform(1.0, 2.0))
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert checkpoint_steps(run_dir) == summary["steps_done"] > 0


def test_a_second_ctrl_c_later_quits_at_once(tmp_path):
    """Seen in CI: when the process does not run Python for a while (a long C call, a busy machine),
    two Ctrl-Cs sent 1.5 s apart reach Python's handler as one (CPython keeps one flag per signal).
    So the second is sent only once the first has been acknowledged."""
    run_dir = tmp_path / "run"
    proc = rlrun(tmp_path, "total_steps=10000000", "algo.n_steps=200000", "checkpoint_every=0", "progress=off",
                 f"hydra.run.dir={run_dir}")  # one iteration takes many seconds
    assert wait_until(lambda: training_started(run_dir), 60)
    proc.send_signal(signal.SIGINT)
    assert wait_until(lambda: "SIGINT received" in (run_dir / "rlrun.log").read_text(), 60)
    time.sleep(1.5)  # past signals.REPEAT_S after the first was handled
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not (run_dir / "summary.json").exists()  # it did not wait for the iteration to end


def test_a_ctrl_c_while_the_run_is_set_up_saves_it_at_step_0(tmp_path, monkeypatch):
    """Seen in CI: a Ctrl-C that came after the event file was created but before the training
    loop ended in a traceback and no summary."""
    run_dir, marker = tmp_path / "run", tmp_path / "constructing"
    monkeypatch.setenv("RLRUN_TEST_STARTING", str(marker))
    monkeypatch.setenv("RLRUN_SKIP_PREFLIGHT", "1")  # the first env built is the run's own
    proc = rlrun(tmp_path, "env=tests.faulty_envs:SlowStart-v0", "env.num_envs=1", "progress=off",
                 f"hydra.run.dir={run_dir}")
    assert wait_until(marker.exists, 60)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err and "resume with: rlrun resume=" in " ".join((out + err).split())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps_done"] == 0
    assert checkpoint_steps(run_dir) == 0


def test_a_ctrl_c_before_the_run_starts_gives_one_line(tmp_path, monkeypatch):
    marker = tmp_path / "constructing"
    monkeypatch.setenv("RLRUN_TEST_STARTING", str(marker))
    proc = rlrun(tmp_path, "env=tests.faulty_envs:SlowStart-v0", "progress=off")  # the preflight builds the env
    assert wait_until(marker.exists, 60)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["rlrun: interrupted before the run started; nothing was written"]
    assert not (tmp_path / "outputs").exists()


def test_nan_reward_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    code, err = finish(rlrun(tmp_path, "env=tests.faulty_envs:NanReward-v0", "algo.n_steps=16", "total_steps=5000",
                             "checkpoint_every=128", "progress=off", f"hydra.run.dir={run_dir}"))
    assert code == 3
    lines = [line for line in err.splitlines() if line.startswith("rlrun: error")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "non-finite reward" in lines[0] and "ppo_clip" in lines[0] and "iteration 3" in lines[0]
    assert f"rlrun resume={run_dir}" in lines[0]
    assert checkpoint_steps(run_dir) == 384  # the last checkpoint before the NaN at step 400
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("env, message", [("NanObservation-v0", "non-finite observation from the env at step 456"),
                                          ("NanFinalObservation-v0", "non-finite final observation from the env at step 400")])
def test_a_nan_observation_is_named_as_one(tmp_path, env, message):
    code, err = finish(rlrun(tmp_path, f"env=tests.faulty_envs:{env}", "algo.n_steps=16", "total_steps=5000",
                             "checkpoint_every=128", "env.normalize_obs=true", "progress=off",
                             f"hydra.run.dir={tmp_path / 'run'}"))
    assert code == 3 and "Traceback" not in err
    assert message in err, err


def test_nan_before_the_first_checkpoint_says_there_is_nothing_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    code, err = finish(rlrun(tmp_path, "env=tests.faulty_envs:NanReward-v0", "algo.n_steps=16", "total_steps=5000",
                             "checkpoint_every=100000", "progress=off", f"hydra.run.dir={run_dir}"))
    assert code == 3
    (line,) = [line for line in err.splitlines() if line.startswith("rlrun: error")]
    assert "non-finite reward" in line and "nothing to resume" in line and "resume=" not in line
    assert not (run_dir / "checkpoints" / "last.pt").exists()


def test_a_crash_is_recorded_in_the_summary_and_its_traceback_in_the_log(tmp_path):
    run_dir = tmp_path / "run"
    code, err = finish(rlrun(tmp_path, "env=tests.faulty_envs:Crash-v0", "algo.n_steps=16", "total_steps=5000",
                             "checkpoint_every=128", "progress=off", f"hydra.run.dir={run_dir}"))
    assert code != 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "crashed" and summary["error"] == "RuntimeError: boom"
    log_text = (run_dir / "rlrun.log").read_text()
    assert "crashed at step" in log_text and "Traceback" in log_text and "RuntimeError: boom" in log_text
    assert checkpoint_steps(run_dir) == 256  # the last periodic checkpoint before the crash is kept


def test_same_seed_gives_identical_scalars_and_parameters(tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        code, err = finish(rlrun(tmp_path, "algo=trpo", "total_steps=4096", "algo.n_steps=512", "progress=off",
                                 "deterministic=true", f"hydra.run.dir={d}"))
        assert code == 0, err
    sa, sb = read_scalars(dirs[0]), read_scalars(dirs[1])
    assert sa.keys() == sb.keys()
    for tag in sa:
        if not tag.startswith("time/"):  # wall-clock figures are all that varies
            assert np.array_equal(np.array(sa[tag]), np.array(sb[tag]), equal_nan=True), tag
    pa, pb = params(dirs[0]), params(dirs[1])
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


BAD_INPUTS = [
    (["algo=nope"], "algo='nope' is not an algorithm"),
    (["algo=trop"], "did you mean trpo"),
    (["env=CartPol-v1"], "did you mean CartPole-v1"),
    (["env=nomodule:Foo-v0"], "cannot be imported"),
    (["algo.clip_eps=abc"], "could not be converted to Float"),
    (["algo.clip_epss=0.1"], "Key 'clip_epss' not in 'PPOClipConfig'"),
    (["sed=1"], "Key 'sed' not in 'Config'"),
    (["seed=abc"], "could not be converted to Integer"),
    (["total_steps=-5"], "total_steps=-5"),
    (["total_steps=0"], "total_steps=0"),
    (["algo.clip_eps=0"], "algo.clip_eps=0.0"),
    (["algo.gamma=1.5"], "algo.gamma=1.5"),
    (["algo.gamma=0"], "algo.gamma=0.0"),
    (["algo.gae_lambda=2"], "algo.gae_lambda=2.0"),
    (["algo=trpo", "algo.max_kl=0"], "algo.max_kl=0.0"),
    (["algo=trpo", "algo.backtrack_coef=1.5"], "algo.backtrack_coef=1.5"),
    (["env.num_envs=0"], "env.num_envs=0"),
    (["algo.batch_size=0"], "algo.batch_size=0"),
    (["algo.activation=gelu"], "algo.activation='gelu'"),
    (["algo.lr_schedule=cosine"], "algo.lr_schedule='cosine'"),
    (["algo=acktr", "algo.critic_optimizer=sgd"], "algo.critic_optimizer='sgd'"),
    (["device=tpu"], "device='tpu'"),
    (["env.vectorization=threads"], "env.vectorization='threads'"),
    (["env=tests.space_envs:TextObs-v0"], "has observation space Text(1, 8, charset=0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz); rlrun supports Box, Discrete, MultiDiscrete, MultiBinary, or a Dict or Tuple of those"),
    (["-m", "seed=0,1", "algo.gamma=2"], "algo.gamma=2.0"),
    (["hydra.run.dir=/proc/rlrun-cannot-write"], "cannot be written"),
    (["resume=/nonexistent/run"], "is not an rlrun run directory"),
    (["seed=4294967296"], "seed=4294967296 is not allowed"),
    (["algo.hidden_sizes=[-5]"], "algo.hidden_sizes=[-5]"),
    (["algo.hidden_sizes=[0]"], "algo.hidden_sizes=[0]"),
    (["algo=ppo_penalty", "algo.kl_coef_init=-1"], "algo.kl_coef_init=-1.0"),
    (["algo=ppo_penalty", "algo.kl_adapt_factor=0"], "algo.kl_adapt_factor=0.0"),
    (["algo=ppo_penalty", "algo.kl_tolerance=0.5"], "algo.kl_tolerance=0.5"),
    (["algo.target_kl=-1"], "algo.target_kl=-1.0"),
    (["algo.max_grad_norm=-1"], "algo.max_grad_norm=-1.0"),
    (["algo.clip_value_eps=-1"], "algo.clip_value_eps=-1.0"),
    (["+algo.clip_epss=0.1"], "did you mean algo.clip_eps?"),
    (["total_steps=${oc.env:RLRUN_TEST_UNSET}"], "total_steps: "),
    (["seed=${seed}"], "seed: Recursive interpolation"),
    (["hydra.run.dir="], "hydra.run.dir is empty"),
    (["hydra.run.dir=/tmp/" + "x" * 300], "is too long (a name of 300 bytes"),
    (["-m", "seed=0,1", "hydra.sweep.dir=/tmp/" + "x" * 300], "hydra.sweep.dir=/tmp/xxx"),
    (["algo=acktr", "algo.stat_decay=2"], "algo.stat_decay=2.0"),
    (["algo=acktr", "algo.damping=-1"], "algo.damping=-1.0"),
    (["algo=acktr", "algo.share_encoder=true", "algo.critic_optimizer=adam"],
     "algo.critic_optimizer='adam' is not allowed with algo.share_encoder=true"),
    (["algo.ent_coef=nan"], "algo.ent_coef=nan"),
    (["algo.log_std_init=inf"], "algo.log_std_init=inf"),
    (["objective=eval_best_return"], "set eval_every > 0"),
    # every job of a sweep is checked, not only the first 256: job 296 is the bad one
    (["-m", "seed=range(4294967000,4294967297)"], "job 296 (seed=4294967296): seed=4294967296 is not allowed"),
]


@pytest.mark.parametrize("args, needle", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_gives_one_line_and_leaves_nothing_behind(tmp_path, args, needle):
    code, err = finish(rlrun(tmp_path, *args), timeout=60)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("rlrun: error: ") and needle in lines[0], lines[0]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_gives_one_line_and_leaves_nothing_behind(tmp_path):
    code, err = finish(rlrun(tmp_path, "device=cuda"), timeout=60)
    assert code == 2 and err.strip().splitlines() == [err.strip()] and "use device=cpu" in err
    assert not (tmp_path / "outputs").exists()


def make_finished_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    code, err = finish(rlrun(tmp_path, "total_steps=512", "algo.n_steps=32", "progress=off", f"hydra.run.dir={run_dir}"))
    assert code == 0, err
    return run_dir


def test_a_new_run_into_a_used_directory_is_refused(tmp_path):
    run_dir = make_finished_run(tmp_path)
    summary = (run_dir / "summary.json").read_text()
    events = sorted(run_dir.glob("events.out.tfevents.*"))
    code, err = finish(rlrun(tmp_path, "total_steps=256", "algo.n_steps=32", f"hydra.run.dir={run_dir}"))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "already holds a run" in lines[0] and f"resume={run_dir}" in lines[0]
    assert (run_dir / "summary.json").read_text() == summary and sorted(run_dir.glob("events.out.tfevents.*")) == events


def test_a_corrupt_overrides_file_on_resume_gives_one_line(tmp_path):
    run_dir = make_finished_run(tmp_path)
    (run_dir / ".hydra" / "overrides.yaml").write_text("{not: [valid")
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}"))
    assert code == 2 and err.startswith("rlrun: error: ") and len(err.strip().splitlines()) == 1, err
    assert "overrides.yaml cannot be read" in err


def test_a_run_in_a_directory_with_quotes_spaces_and_unicode_resumes(tmp_path):
    from rlrun.launch.arguments import hydra_quote

    run_dir = tmp_path / "it's a ünïcode [dir], a=b\\"
    code, err = finish(rlrun(tmp_path, "total_steps=512", "algo.n_steps=32", "progress=off",
                             f"hydra.run.dir={hydra_quote(str(run_dir))}"))
    assert code == 0, err
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}", "total_steps=1024"))  # the path as the shell passes it
    assert code == 0, err
    assert json.loads((run_dir / "summary.json").read_text())["steps_done"] == 1024


def test_a_sweep_job_resumes_with_the_command_it_prints(tmp_path):
    """Job directory names hold '=' and ',' (and a sweep preset may be among the overrides)."""
    sweep = tmp_path / "sweep"
    proc = rlrun(tmp_path, "-m", "seed=3", "total_steps=10000000", "checkpoint_every=512", "algo.n_steps=32,64",
                 "algo.gamma=0.99,0.98", "progress=off", f"hydra.sweep.dir={sweep}")
    wait_until(lambda: list(sweep.glob("*/*/*/checkpoints/last.pt")), 120)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    job_dir = next(sweep.glob("*/*/seed3*"))
    assert "=" in job_dir.name and "," in job_dir.name
    printed = re.search(r"resume with: (rlrun \S+)", " ".join((out + err).split()))
    command = shlex.split(printed.group(1))
    assert command == ["rlrun", f"resume={job_dir}"]
    stopped_at = checkpoint_steps(job_dir)
    code, err = finish(rlrun(tmp_path, *command[1:], f"total_steps={stopped_at + 512}"))
    assert code == 0, err
    summary = json.loads((job_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["seed"] == 3 and summary["steps_done"] == stopped_at + 512
    assert list(sweep.glob("*/*/*/.hydra")) == [job_dir / ".hydra"]  # resumed in place, not as a new sweep
    assert not (tmp_path / "outputs").exists()


def test_an_interrupted_sweep_resumes_every_unfinished_job_and_skips_completed_ones(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0,1,2", "total_steps=6000", "checkpoint_every=512", "algo.n_steps=32", "progress=off",
            f"hydra.sweep.dir={sweep}"]
    proc = rlrun(tmp_path, *args)
    wait_until(lambda: list(sweep.glob("*/*/seed0*/checkpoints/last.pt")), 120, interval=0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert f"the whole sweep: rlrun -m resume={sweep}" in " ".join((out + err).split())
    first = next(sweep.glob("*/*/seed0*"))
    stopped_at = checkpoint_steps(first)
    assert 0 < stopped_at < 6000 and not list(sweep.glob("*/*/seed1*/summary.json"))

    code, err = finish(rlrun(tmp_path, "-m", f"resume={sweep}"))
    assert code == 0, err
    jobs = sorted(d.parent for d in sweep.glob("*/*/*/.hydra"))
    assert [d.name[:5] for d in jobs] == ["seed0", "seed1", "seed2"]
    for job in jobs:
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["steps_done"] >= 6000
        steps = [s for s, _ in read_scalars(job)["time/fps"]]
        assert steps == sorted(set(steps)) and steps[-1] == summary["steps_done"]  # one stream, each step once
    assert len(list(first.glob("events.out.tfevents.*"))) == 2  # the first attempt's and the resumed one's

    mtimes = {job: (job / "summary.json").stat().st_mtime for job in jobs}
    code, err = finish(rlrun(tmp_path, "-m", f"resume={sweep}"))  # nothing left to do
    assert code == 0, err
    assert {job: (job / "summary.json").stat().st_mtime for job in jobs} == mtimes


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs, where the machine lets us mount one (root on Linux)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_stops_with_one_line_and_leaves_no_torn_file(tmp_path, tiny_disk):
    run_dir = tiny_disk / "run"
    code, err = finish(rlrun(tmp_path, "total_steps=100000", "checkpoint_every=256", "keep_checkpoints=true",
                             "progress=off", f"hydra.run.dir={run_dir}"))
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "resume with: rlrun resume=" in lines[0], err
    assert not list(run_dir.rglob("*.tmp"))
    summary = json.loads((run_dir / "summary.json").read_text())  # whole, or it would not parse
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert checkpoint_steps(run_dir) > 0  # the last good checkpoint loads


def test_a_run_directory_in_use_is_refused_to_a_resume(tmp_path):
    run_dir = tmp_path / "run"
    running = rlrun(tmp_path, "total_steps=10000000", "checkpoint_every=512", "algo.n_steps=32", "progress=off",
                    f"hydra.run.dir={run_dir}")
    wait_until(lambda: checkpoint_steps(run_dir) >= 0, 60)
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}"))
    running.send_signal(signal.SIGTERM)
    assert finish(running)[0] == 143
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"is in use by another rlrun process (pid {running.pid})" in err
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == overrides  # Hydra wrote nothing there
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}", f"total_steps={checkpoint_steps(run_dir) + 64}"))
    assert code == 0, err  # free again once the run has ended


def test_a_cuda_run_resumes_on_a_machine_without_cuda_with_device_cpu(tmp_path):
    run_dir = make_finished_run(tmp_path)
    overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + "- device=cuda\n")  # as if it had run with device=cuda
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    ckpt["config"]["device"] = "cuda"
    save_checkpoint(run_dir / "checkpoints" / "last.pt", ckpt)
    if not torch.cuda.is_available():
        code, err = finish(rlrun(tmp_path, f"resume={run_dir}", "total_steps=1024"))
        assert code == 2 and "use device=cpu" in err and "Traceback" not in err
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}", "device=cpu", "total_steps=1024"))
    assert code == 0, err
    assert json.loads((run_dir / "summary.json").read_text())["steps_done"] == 1024


def test_resume_refuses_a_conflicting_config_and_a_corrupt_checkpoint(tmp_path):
    run_dir = make_finished_run(tmp_path)
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}", "algo.gamma=0.5"))
    assert code == 2 and "conflicts with its checkpoint" in err and "algo.gamma" in err and "Traceback" not in err
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}", "total_steps=1024"))  # extending a run is allowed
    assert code == 0, err
    assert json.loads((run_dir / "summary.json").read_text())["steps_done"] == 1024
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}", "total_steps=2048"))
    assert code == 2 and "corrupt" in err and "Traceback" not in err
    (run_dir / "checkpoints" / "last.pt").unlink()
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}"))
    assert code == 2 and "no checkpoint" in err


def test_events_up_to_a_checkpoint_are_on_disk_before_it_is_written(tmp_path, monkeypatch):
    """A SIGKILL loses the TensorBoard writer's unflushed queue, and a resumed run starts after the
    checkpoint's step: every event up to that step must be on disk when the checkpoint appears
    (the kill-and-resume test above caught step 2048 missing on a loaded machine)."""
    import rlrun.trainer as trainer
    from tests.test_config import compose_cfg

    seen: list[tuple[int, int | None]] = []
    real_save = trainer.save_checkpoint

    def save_and_check(path, state):
        on_disk = [step for step, _ in read_scalars(tmp_path).get("time/fps", [])]
        seen.append((state["steps"], on_disk[-1] if on_disk else None))
        real_save(path, state)

    monkeypatch.setattr(trainer, "save_checkpoint", save_and_check)
    cfg = compose_cfg("algo=ppo_clip", "env=CartPole-v1", "total_steps=1024", "checkpoint_every=256", "progress=off",
                      "algo.n_steps=32", "algo.n_epochs=1")
    trainer.train(cfg, tmp_path)
    assert len(seen) >= 4 and all(step == last_on_disk for step, last_on_disk in seen), seen


def test_async_envs_resume_from_the_checkpoint_without_duplicate_or_missing_steps(tmp_path):
    """Async envs live in sub-processes and cannot be checkpointed, so a resumed run restarts their
    episodes (documented: not bit-exact). What must still hold: it continues from the checkpoint's
    step, the log has every iteration's step exactly once, and training goes on."""
    run_dir = tmp_path / "run"
    common = ["env.vectorization=async", "env.num_envs=2", "algo.n_steps=64", "progress=off"]
    code, err = finish(rlrun(tmp_path, *common, "total_steps=512", f"hydra.run.dir={run_dir}"))
    assert code == 0, err
    before = params(run_dir)
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}", "total_steps=1024"))
    assert code == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 1024
    fps_steps = [s for s, _ in read_scalars(run_dir)["time/fps"]]
    assert fps_steps == list(range(128, 1025, 128))
    after = params(run_dir)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # trained on after the resume


def test_building_async_envs_leaves_this_process_s_signal_handlers_as_they_were():
    """AsyncVectorEnv builds one env in the calling process to read its spaces, through the worker
    function that ignores Ctrl-C: before, a run (or a notebook after rlrun.train) ignored Ctrl-C."""
    from omegaconf import OmegaConf

    from rlrun.config import EnvConfig
    from rlrun.envs import make_vec_env

    def handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, handler)
    try:
        envs = make_vec_env(OmegaConf.structured(EnvConfig(id="CartPole-v1", num_envs=2, vectorization="async")))
        envs.close()
        assert signal.getsignal(signal.SIGINT) is handler
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)


ENDLESS = ("env=tests.faulty_envs:Endless-v0", "env.num_envs=2", "algo.n_steps=64", "eval_every=128")


def test_evaluation_on_an_env_without_a_time_limit_ends_its_episodes(tmp_path):
    """As rlrun-eval: an evaluation episode ends after 10,000 steps where the env has no limit."""
    run_dir = tmp_path / "run"
    code, err = finish(rlrun(tmp_path, *ENDLESS, "eval_episodes=1", "total_steps=256", "progress=off",
                             f"hydra.run.dir={run_dir}"), timeout=120)
    assert code == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["eval_final_return"] == 10000.0 and summary["eval_final_step"] == 256


def test_a_signal_during_an_evaluation_stops_it_and_saves(tmp_path):
    """Ten 10,000-step evaluation episodes take seconds: the signal is seen between their steps."""
    run_dir = tmp_path / "run"
    proc = rlrun(tmp_path, *ENDLESS, "eval_episodes=10", "total_steps=100000", "progress=off",
                 f"hydra.run.dir={run_dir}")
    assert wait_until(lambda: training_started(run_dir), 60)
    time.sleep(1.5)  # the first evaluation starts after the first iteration, at step 128
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc, timeout=60)
    assert code == 143 and time.monotonic() - started < 10, err
    assert "evaluation at step 128 stopped by the signal" in (run_dir / "rlrun.log").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps_done"] == 128
    assert summary["eval_final_return"] is None  # the cut evaluation recorded nothing


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR1])
def test_sighup_and_sigusr1_save_like_sigterm(tmp_path, signum):
    """A closed terminal or ssh session sends SIGHUP; some schedulers warn with SIGUSR1."""
    run_dir = tmp_path / "run"
    # as from a terminal: a suite started under nohup would hand its children SIGHUP ignored
    proc = rlrun(tmp_path, "total_steps=10000000", "checkpoint_every=0", "progress=off", f"hydra.run.dir={run_dir}",
                 preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    assert wait_until(lambda: training_started(run_dir), 60)
    time.sleep(1.0)
    proc.send_signal(signum)
    code, err = finish(proc, timeout=60)
    assert code == 128 + signum and "Traceback" not in err, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and checkpoint_steps(run_dir) == summary["steps_done"] > 0


def test_under_nohup_sighup_is_still_ignored(tmp_path):
    run_dir = tmp_path / "run"
    proc = rlrun(tmp_path, "total_steps=30000", "algo.n_steps=64", "progress=off", f"hydra.run.dir={run_dir}",
                 prefix=("nohup",))
    assert wait_until(lambda: training_started(run_dir), 60)
    proc.send_signal(signal.SIGHUP)
    code, err = finish(proc, timeout=120)
    assert code == 0, err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_a_crash_while_setting_up_is_recorded_with_one_line(tmp_path, vectorization):
    """reset() raising: the run folder exists by then, so it gets a summary and the traceback."""
    run_dir = tmp_path / "run"
    code, err = finish(rlrun(tmp_path, "env=tests.faulty_envs:ResetFails-v0", f"env.vectorization={vectorization}",
                             "env.num_envs=2", "progress=off", f"hydra.run.dir={run_dir}"))
    assert code == 1 and "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("rlrun: error")]
    assert "crashed" in line and "reset failed" in line and "rlrun.log" in line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "crashed" and "reset failed" in summary["error"] and summary["steps_done"] == 0
    log_text = (run_dir / "rlrun.log").read_text()
    assert "crashed while setting up the run" in log_text and "Traceback" in log_text


def test_a_reward_of_none_is_named_as_such(tmp_path):
    run_dir = tmp_path / "run"
    code, err = finish(rlrun(tmp_path, "env=tests.faulty_envs:NoneReward-v0", "env.num_envs=1", "progress=off",
                             f"hydra.run.dir={run_dir}"))
    assert code == 3 and "Traceback" not in err, err
    assert "returned a reward of None" in err and "nan" not in err.lower()


@pytest.mark.parametrize("bad, named", [
    (["env.reward_threshold=inf"], "env.reward_threshold=inf"),
    (["env.reward_threshold=nan"], "env.reward_threshold=nan"),
    (["env.num_envs=1", "algo.n_steps=1", "algo.batch_size=1"], "algo.normalize_advantage"),
])
def test_numbers_that_cannot_work_are_refused_before_the_run(tmp_path, bad, named):
    code, err = finish(rlrun(tmp_path, *bad, "progress=off"))
    assert code == 2 and named in err and "Traceback" not in err, err
    assert not (tmp_path / "outputs").exists()


def test_summary_json_is_strict_json(tmp_path):
    from rlrun.run_summary import write_summary

    write_summary(tmp_path, {"final_return": float("nan"), "threshold": float("-inf"), "steps_done": 3})
    assert json.loads((tmp_path / "summary.json").read_text(), parse_constant=lambda c: 1 / 0) == {
        "final_return": None, "threshold": None, "steps_done": 3}


def test_more_torch_threads_than_cores_is_refused(tmp_path):
    code, err = finish(rlrun(tmp_path, f"torch_threads={(os.cpu_count() or 1) + 1}", "progress=off"))
    assert code == 2 and "torch_threads=" in err and "cores" in err, err


@pytest.mark.parametrize("bad", [["algo.n_steps=2000000000"], ["algo.hidden_sizes=[400000,400000]"]])
def test_a_run_larger_than_the_machine_is_refused_with_the_figures(tmp_path, bad):
    code, err = finish(rlrun(tmp_path, *bad, "progress=off"))
    assert code == 2 and "would need about" in err and "GB" in err and "Traceback" not in err, err


def test_files_a_run_writes_in_place_are_never_written_through_a_planted_link(tmp_path):
    run_dir = make_finished_run(tmp_path)
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    (run_dir / "rlrun.log").unlink()
    (run_dir / "rlrun.log").symlink_to(target)
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}", "total_steps=1024"))
    assert code == 2 and "rlrun.log is a symbolic link" in err, err
    (run_dir / "eval.json").symlink_to(target)
    proc = subprocess.run([sys.executable, "-m", "rlrun.eval_command", str(run_dir), "--episodes", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "eval.json is a symbolic link" in proc.stderr
    (run_dir / "rlrun.log").unlink()
    (run_dir / "eval.json").unlink()
    (run_dir / ".rlrun.lock").unlink(missing_ok=True)
    (run_dir / ".rlrun.lock").symlink_to(target)
    code, err = finish(rlrun(tmp_path, f"resume={run_dir}", "total_steps=1024"))
    assert code == 2 and ".rlrun.lock" in err and "symbolic link" in err, err
    assert target.read_text() == "keep me\n"


def test_a_symbolic_link_loop_as_the_run_folder_is_one_line(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    code, err = finish(rlrun(tmp_path, f"hydra.run.dir={tmp_path / 'loop'}", "progress=off"))
    assert code == 2 and "Traceback" not in err and "loop" in err, err


@pytest.mark.parametrize("args, named", [
    (["--config-name", "other"], "--config-name is not supported"),
    (["--config-dir=/tmp"], "--config-dir is not supported"),
    (["--experimental-rerun", "x.pickle"], "--experimental-rerun is not supported"),
    (["--shell-completion"], "--shell-completion needs install="),
    (["tuned=ppo_clip/CartPole-v2"], "did you mean ppo_clip/CartPole-v1"),
    (["env.register=os.path:join"], "cannot be called without arguments"),
    (["env.wrappers=[{target: 'builtins:repr'}]"], "returned str, not a gymnasium env"),
    (["--cfg", "job", "algo.nope=1"], "Key 'nope' not in 'PPOClipConfig'"),
    (["--cfg", "job", "algo.clip_eps=-1"], "algo.clip_eps=-1"),
    (["--cfg", "hydra", "-m", "seed=0,1"], "--cfg and -m cannot be combined"),
    (["tuned_file=conf/tuned/nope.yaml"], "tuned_file='conf/tuned/nope.yaml' is not allowed"),
])
def test_start_up_checks_name_the_flag_or_key(tmp_path, args, named):
    code, err = finish(rlrun(tmp_path, *args, "progress=off"))
    assert code == 2 and named in err and "Traceback" not in err, err


@pytest.mark.parametrize("env", ["HugeReward-v0", "HugeObservation-v0"])
def test_values_beyond_float32_are_named_where_they_come_from(tmp_path, env):
    """Finite as the env's float64, infinite as the float32 the networks learn from: named at the
    env, not later as a non-finite loss."""
    code, err = finish(rlrun(tmp_path, f"env=tests.faulty_envs:{env}", "env.num_envs=1", "env.normalize_obs=true",
                             "progress=off", f"hydra.run.dir={tmp_path / 'run'}"))
    assert code == 3 and "beyond float32's range" in err and "loss" not in err, err
