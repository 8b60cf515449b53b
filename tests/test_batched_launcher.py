"""``hydra/launcher=batched``: a sweep's seeds grouped into one process each and updated together,
every seed still a run of its own (directory, summary, checkpoint, resume), the same run as alone."""

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from rlrun.checkpoint import load_checkpoint
from rlrun.launch.batched import forks_groups, seed_groups, split
from tests.conftest import spawn_rlrun, wait_until

SHORT = ("algo=ppo_clip", "env=CartPole-v1", "total_steps=2048", "progress=off")


def summaries(root: Path) -> dict[int, dict]:
    return {s["seed"]: s for s in (json.loads(p.read_text()) for p in root.rglob("summary.json"))}


def test_jobs_differing_only_in_seed_form_a_group_split_over_the_cores():
    jobs = [["algo=ppo_clip", f"seed={s}"] for s in range(5)] + [["algo=trpo", f"seed={s}"] for s in range(2)]
    groups = seed_groups(jobs, initial_job_idx=10)
    assert [[idx for idx, _ in g] for g in groups] == [[10, 11, 12, 13, 14], [15, 16]]
    assert [[idx for idx, _ in c] for c in split(groups[:1], processes=2)] == [[10, 11, 12], [13, 14]]
    assert [[idx for idx, _ in c] for c in split(groups, processes=2)] == [[10, 11, 12, 13, 14], [15, 16]]
    assert [len(c) for c in split(groups[1:], processes=8)] == [1, 1]  # never an empty group


def test_the_fork_server_is_started_early_only_for_groups_in_local_processes():
    sweep = ["-m", "algo=ppo_clip", "seed=0,1,2,3", "hydra/launcher=batched"]
    assert forks_groups(sweep + ["hydra.launcher.processes=2"])
    assert forks_groups(sweep) == ((os.cpu_count() or 1) > 1)  # default: one process a core
    assert not forks_groups(sweep + ["hydra.launcher.processes=1"])  # the group runs in this process
    assert not forks_groups(["algo=ppo_clip", "seed=0", "hydra/launcher=batched"])  # not a sweep
    assert not forks_groups(["-m", "seed=0,1", "hydra/launcher=batched_slurm"])  # one SLURM job a group


def test_each_seed_of_a_group_is_the_run_it_would_be_alone(run_rlrun):
    res = run_rlrun("-m", *SHORT, "seed=0,1,2", "hydra/launcher=batched", "hydra.launcher.processes=1",
                    "hydra.sweep.dir=sweep")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Launching 3 jobs as 1 groups of seeds" in res.stdout
    sweep = run_rlrun.cwd / "sweep"
    for seed in (0, 1):
        alone = run_rlrun(*SHORT, f"seed={seed}", f"hydra.run.dir=alone{seed}")
        assert alone.returncode == 0, alone.stderr[-3000:]
        grouped_dir = sweep / "ppo_clip" / "CartPole-v1" / f"seed{seed}"
        assert (grouped_dir / ".hydra" / "overrides.yaml").is_file() and list(grouped_dir.glob("events.out.tfevents.*"))
        assert f"seed {seed}, 2048 steps" in (grouped_dir / "rlrun.log").read_text()
        mine, theirs = summaries(grouped_dir)[seed], summaries(run_rlrun.cwd / f"alone{seed}")[seed]
        assert mine["status"] == "completed" and mine["steps_done"] == theirs["steps_done"]
        assert mine["final_return"] == theirs["final_return"]  # the same episodes
        ours = load_checkpoint(grouped_dir / "checkpoints" / "last.pt")
        ref = load_checkpoint(run_rlrun.cwd / f"alone{seed}" / "checkpoints" / "last.pt")
        for key, value in ref["actor"].items():  # batched matrix products: float32 rounding apart
            torch.testing.assert_close(ours["actor"][key], value, rtol=1e-4, atol=1e-5)
        assert ours["algo"]["optimizer"]["steps"] == ref["algo"]["optimizer"]["steps"]
        assert torch.equal(ours["algo"]["generator"], ref["algo"]["generator"])
    # one seed resumed alone, from its own directory, as any run
    more = run_rlrun(f"resume={sweep / 'ppo_clip' / 'CartPole-v1' / 'seed2'}", "total_steps=2560")
    assert more.returncode == 0, more.stderr[-3000:]
    assert summaries(sweep / "ppo_clip" / "CartPole-v1" / "seed2")[2]["steps_done"] == 2560


def test_seeds_whose_networks_are_not_written_out_make_their_batches_and_diagnostics_each(run_rlrun):
    """gSDE actors (A2C's tuned Pendulum) have no written-out head: each seed's collector makes its
    batch and its diagnostics are its own pass; they are logged as the seed's run alone logs them."""
    from rlrun.report import read_scalars

    common = ("algo=a2c", "env=Pendulum-v1", "total_steps=640", "log_every=1", "progress=off")
    res = run_rlrun("-m", *common, "seed=0,1", "hydra/launcher=batched", "hydra.launcher.processes=1",
                    "hydra.sweep.dir=sweep")
    assert res.returncode == 0, res.stderr[-3000:]
    alone = run_rlrun(*common, "seed=1", "hydra.run.dir=alone1")
    assert alone.returncode == 0, alone.stderr[-3000:]
    mine = read_scalars(run_rlrun.cwd / "sweep" / "a2c" / "Pendulum-v1" / "seed1")
    theirs = read_scalars(run_rlrun.cwd / "alone1")
    for tag in ("a2c/kl", "policy/entropy", "value/explained_variance"):
        (my_steps, my_values), (their_steps, their_values) = mine[tag], theirs[tag]
        assert len(my_steps) == 10 and list(my_steps) == list(their_steps), tag
        assert list(my_values) == list(their_values), tag  # the same operations seed by seed: bit for bit


def test_an_algorithm_whose_maths_is_not_stacked_updates_its_seeds_one_after_another(run_rlrun):
    """ACKTR's joint K-FAC of a CNN shared by actor and critic: each seed's update one after another."""
    res = run_rlrun("-m", "algo=acktr", "env=tests.space_envs:ImageMatch-v0", "algo.share_encoder=true",
                    "total_steps=256", "algo.n_steps=32", "env.num_envs=4", "tuned=none", "progress=off", "seed=0,1",
                    "hydra/launcher=batched", "hydra.launcher.processes=1", "hydra.sweep.dir=sweep",
                    env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "acktr: its maths is not stacked; the group's seeds update one after another" in res.stdout
    assert {s: v["status"] for s, v in summaries(run_rlrun.cwd / "sweep").items()} == {0: "completed", 1: "completed"}


def test_a_seed_that_fails_stops_alone_and_the_sweep_names_it(run_rlrun):
    repo = str(Path(__file__).resolve().parent.parent)
    res = run_rlrun("-m", "algo=ppo_clip", "env=tests.faulty_envs:NanReward-v0", "seed=0,1,2", "total_steps=2048",
                    "algo.n_steps=32", "env.num_envs=2", "progress=off", "hydra/launcher=batched",
                    "hydra.launcher.processes=1", "hydra.sweep.dir=sweep", env={"PYTHONPATH": repo})
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "1 of 3 jobs" in res.stderr and "non-finite reward" in res.stderr
    statuses = sorted(s["status"] for s in summaries(run_rlrun.cwd / "sweep").values())
    assert statuses == ["completed", "completed", "failed"]


def test_ctrl_c_saves_every_seed_and_the_sweep_resumes(tmp_path):
    args = ("-m", "algo=ppo_clip", "env=CartPole-v1", "seed=0,1,2,3", "total_steps=400000", "checkpoint_every=4096",
            "progress=off", "hydra/launcher=batched", "hydra.launcher.processes=2", "hydra.sweep.dir=sweep")
    proc = spawn_rlrun(tmp_path, *args)
    assert wait_until(lambda: len(list(tmp_path.glob("sweep/**/checkpoints/last.pt"))) == 4, timeout=120)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out[-2000:], err[-2000:])
    saved = summaries(tmp_path / "sweep")
    assert sorted(saved) == [0, 1, 2, 3] and {s["status"] for s in saved.values()} == {"interrupted"}
    assert "resume with: rlrun -m resume=" in out
    resumed = spawn_rlrun(tmp_path, "-m", "resume=sweep", "total_steps=20480")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    done = summaries(tmp_path / "sweep")
    assert {s["status"] for s in done.values()} == {"completed"} and {s["steps_done"] for s in done.values()} == {20480}


def test_ctrl_c_in_a_terminal_saves_every_seed_without_a_traceback(tmp_path):
    """A terminal's Ctrl-C reaches every process of the command (its process group): the groups,
    which also get it passed on, and the fork server they came from, which ignores it."""
    args = ("-m", "algo=ppo_clip", "env=CartPole-v1", "seed=0,1", "total_steps=400000", "checkpoint_every=4096",
            "progress=off", "hydra/launcher=batched", "hydra.launcher.processes=2", "hydra.sweep.dir=sweep")
    proc = spawn_rlrun(tmp_path, *args, start_new_session=True)  # its own process group, as a terminal's job
    assert wait_until(lambda: len(list(tmp_path.glob("sweep/**/checkpoints/last.pt"))) == 2, timeout=120)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out[-2000:], err[-2000:])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    saved = summaries(tmp_path / "sweep")
    assert sorted(saved) == [0, 1] and {s["status"] for s in saved.values()} == {"interrupted"}


@pytest.mark.parametrize("after_s", [0.8, 1.6])
def test_ctrl_c_while_the_sweep_starts_exits_with_one_line(tmp_path, after_s):
    """Ctrl-C at moments of the start (the preflight, Hydra's setup, the groups' processes waiting
    for the fork server's imports, their first iterations): never a traceback, lines that say
    what happened, and the sweep resumes from wherever it stopped. Exit status 130; 1 if the stop
    came after Hydra's setup and before the launcher took the signals over: then the sweep's own
    report (that of every launcher) names the jobs not run."""
    args = ("-m", "algo=ppo_clip", "env=CartPole-v1", "seed=0,1,2,3", "total_steps=20480", "progress=off",
            "hydra/launcher=batched", "hydra.launcher.processes=2", "hydra.sweep.dir=sweep")
    proc = spawn_rlrun(tmp_path, *args, start_new_session=True)  # seconds longer than after_s: a 0 is a lost stop
    time.sleep(after_s)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in out + err, (out[-3000:], err[-3000:])
    if proc.returncode == 1:
        assert "stopping the sweep" in err and "not run: the sweep was stopped first" in err, err[-3000:]
        assert "rlrun -m resume=" in " ".join(err.split()), err[-3000:]
    else:
        assert proc.returncode == 130, (out[-2000:], err[-2000:])
        assert re.search(r"rlrun: interrupted|not started: the sweep was stopped first|every seed saved", out + err)
    if (tmp_path / "sweep" / "multirun.yaml").exists():
        resumed = spawn_rlrun(tmp_path, "-m", "resume=sweep")
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err[-3000:]
        assert {s["status"] for s in summaries(tmp_path / "sweep").values()} == {"completed"}


def test_each_group_of_seeds_is_one_ray_task(run_rlrun):
    """hydra/launcher=batched_ray_local: the groups go to Ray's workers as one task each."""
    import pytest

    from tests.test_sweeps import has

    if not has("hydra_plugins.hydra_ray_launcher"):
        pytest.skip("pip install 'rlrun[sweep]'")
    res = run_rlrun("-m", *SHORT, "seed=0,1,2,3", "hydra/launcher=batched_ray_local", "hydra.launcher.processes=2",
                    "hydra.sweep.dir=sweep", env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Ray Launcher is launching 2 jobs" in res.stdout + res.stderr
    assert {s: v["status"] for s, v in summaries(run_rlrun.cwd / "sweep").items()} == {s: "completed" for s in range(4)}


def test_a_groups_configs_composed_once_equal_hydras_composition_of_each():
    """The group's first job is composed by Hydra, the other seeds copied from it: each copy equals
    Hydra's own composition of that job (its seed, task overrides, override_dirname, job number)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import HydraContext, RunMode
    from omegaconf import OmegaConf

    from rlrun.config import CONF_DIR, register_configs
    from rlrun.launch.batched import _sweep_config, _sweep_configs, register

    register_configs()
    register()  # hydra/launcher=batched, as the CLI does
    jobs = [(7 + k, ["algo=trpo", "env=Pendulum-v1", f"seed={s}", "algo.max_kl=0.02"]) for k, s in enumerate((3, 11, 5))]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["hydra/launcher=batched", "hydra.sweep.dir=sweep"],
                                           run_mode=RunMode.MULTIRUN)
        context = HydraContext(config_loader=loader, callbacks=None)
        copied = _sweep_configs(context, master, jobs)
        composed = [_sweep_config(context, master, job) for job in jobs]
    assert [c.seed for c in copied] == [3, 11, 5] and [c.hydra.job.num for c in copied] == [7, 8, 9]
    for mine, hydras in zip(copied, composed):
        assert OmegaConf.to_container(mine, resolve=False) == OmegaConf.to_container(hydras, resolve=False)
        assert mine.hydra.sweep.subdir == hydras.hydra.sweep.subdir  # the job's directory, resolved
    assert copied[1].hydra.sweep.subdir == "trpo/Pendulum-v1/seed11_algo.max_kl=0.02"
