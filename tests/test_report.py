"""rlrun-report: the statistics by hand, the grouping, and a report of a real tiny multirun."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlrun import report
from rlrun.report import (Run, bootstrap_ci, common_grid, group_labels, group_overrides, group_runs, iqm,
                          main)
from tests.conftest import RLRUN, read_scalars

# ---------------------------------------------------------------- reading event files


def test_read_scalars_gives_the_asked_tags_or_all_of_them(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path)) as writer:
        for step, value in [(2, 1.0), (1, float("nan"))]:
            writer.add_scalar("loss/a", value, step)
        writer.add_scalar("loss/b", 3.0, 1)
    every = report.read_scalars(tmp_path)
    assert set(every) == {"loss/a", "loss/b"}
    steps, values = every["loss/a"]
    assert steps.tolist() == [1, 2] and np.isnan(values[0]) and values[1] == 1.0  # sorted by step
    asked = report.read_scalars(tmp_path, ["loss/b", "loss/missing"])
    assert asked["loss/b"][1].tolist() == [3.0] and asked["loss/missing"][0].size == 0


# ---------------------------------------------------------------- statistics

def test_iqm_by_hand():
    # sorted: -50 1 2 3 4 5 6 100; n=8 drops 2 at each end -> mean(2, 3, 4, 5)
    assert iqm([1, 2, 3, 4, 100, -50, 5, 6]) == pytest.approx(3.5)
    # n=5 drops 1 at each end -> mean(2, 3, 4)
    assert iqm([10, 3, 2, 4, 0]) == pytest.approx(3.0)
    # fewer than 4 values: nothing dropped
    assert iqm([1.0, 2.0, 6.0]) == pytest.approx(3.0)
    assert iqm([7.0]) == 7.0


def test_bootstrap_ci_contains_the_mean():
    values = np.random.default_rng(1).normal(10.0, 2.0, size=8)
    low, high = bootstrap_ci(values, np.random.default_rng(0))
    assert low < values.mean() < high


def test_bootstrap_ci_shrinks_with_more_data():
    data = np.random.default_rng(2).normal(0.0, 1.0, size=1000)
    widths = [np.subtract(*bootstrap_ci(data[:n], np.random.default_rng(0))[::-1]) for n in (5, 50, 1000)]
    assert widths[0] > widths[1] > widths[2] > 0


def test_bootstrap_ci_of_constant_data_is_the_value():
    assert bootstrap_ci([3.25] * 5, np.random.default_rng(0)) == (3.25, 3.25)
    assert bootstrap_ci([4.0], np.random.default_rng(0)) == (4.0, 4.0)


def test_common_grid_spans_the_range_all_curves_cover():
    curves = [(np.array([0.0, 100.0, 200.0]), np.zeros(3)), (np.array([50.0, 150.0]), np.zeros(2))]
    grid = common_grid(curves, 11)
    assert grid[0] == 50.0 and grid[-1] == 150.0 and len(grid) == 11


# ---------------------------------------------------------------- grouping

def fake_run(seed: int, algo: str = "ppo_clip", env: str = "CartPole-v1", extra: tuple[str, ...] = ()) -> Run:
    overrides = [f"seed={seed}", f"algo={algo}", f"env={env}", "total_steps=2048", "progress=off", *extra]
    return Run(path=Path(f"/x/{algo}{seed}{extra}"), env=env, algo=algo, seed=seed,
               overrides=group_overrides(overrides), summary=None)


def test_grouping_ignores_the_seed():
    groups = group_runs([fake_run(s) for s in (2, 0, 1)])
    assert len(groups) == 1
    assert [r.seed for r in next(iter(groups.values()))] == [0, 1, 2]


def test_other_overrides_algos_and_envs_make_separate_groups():
    runs = [fake_run(s, extra=e) for s in (0, 1) for e in [("algo.clip_eps=0.1",), ("algo.clip_eps=0.2",)]]
    runs += [fake_run(s, algo="trpo") for s in (0, 1)] + [fake_run(0, env="Pendulum-v1")]
    groups = group_runs(runs)
    assert sorted((k[0], k[1], k[2]) for k in groups) == sorted([
        ("CartPole-v1", "ppo_clip", ("algo.clip_eps=0.1", "total_steps=2048")),
        ("CartPole-v1", "ppo_clip", ("algo.clip_eps=0.2", "total_steps=2048")),
        ("CartPole-v1", "trpo", ("total_steps=2048",)),
        ("Pendulum-v1", "ppo_clip", ("total_steps=2048",))])
    assert all(len(v) == 2 for k, v in groups.items() if k[0] == "CartPole-v1")
    labels = group_labels([k for k in groups if k[0] == "CartPole-v1"])
    assert sorted(labels.values()) == ["ppo_clip algo.clip_eps=0.1", "ppo_clip algo.clip_eps=0.2", "trpo"]


# ---------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def multirun(tmp_path_factory) -> Path:
    """2 algos x 2 seeds of a tiny CartPole run (a low threshold, so some runs are solved), plus a
    copy of one run without its summary.json, as a crashed run leaves it."""
    cwd = tmp_path_factory.mktemp("report")
    res = subprocess.run([*RLRUN, "-m", "seed=0,1", "algo=ppo_clip,trpo", "total_steps=1024", "algo.n_steps=64",
                          "env.reward_threshold=25", "progress=off"],
                         cwd=cwd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    (root,) = (cwd / "outputs" / "multirun").iterdir()
    (seed0,) = root.glob("ppo_clip/*/seed0")
    crashed = seed0.parent / "seed0_crashed"
    shutil.copytree(seed0, crashed)
    (crashed / "summary.json").unlink()
    return root


def table_rows(markdown: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}  # rows[0] is the header


def test_report_of_a_multirun_with_a_crashed_run(multirun, capsys):
    assert main([str(multirun)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert f"rlrun-report: wrote {multirun / 'report' / 'report.md'} and CartPole-v1_rollout_ep_return.png" in captured.err
    out = multirun / "report"
    png = out / "CartPole-v1_rollout_ep_return.png"
    assert png.is_file() and png.stat().st_size > 0
    assert (out / "report.md").read_text() == printed
    rows = table_rows(printed)
    assert sorted(rows) == ["ppo_clip", "trpo"]

    for algo, row in rows.items():
        run_dirs = sorted(p for p in multirun.glob(f"{algo}/*/seed*") if p.is_dir())
        summaries = [json.loads((p / "summary.json").read_text()) for p in run_dirs if (p / "summary.json").exists()]
        finals = [s["final_return"] for s in summaries]
        incomplete = [p for p in run_dirs if not (p / "summary.json").exists()]
        finals += [float(np.mean([v for _, v in read_scalars(p)["rollout/ep_return"]][-20:])) for p in incomplete]
        n_seeds, n_incomplete, final, iqm_cell, solved = row[:5]
        assert iqm_cell == "-"  # 2 or 3 seeds: no IQM (from 5 up)
        assert int(n_seeds) == len(run_dirs) == (3 if algo == "ppo_clip" else 2)
        assert int(n_incomplete) == len(incomplete) == (1 if algo == "ppo_clip" else 0)
        mean = float(final.split("±")[0])
        assert mean == pytest.approx(np.mean(finals), abs=0.006)
        n_solved = sum(s["solved_step"] is not None for s in summaries)
        assert re.fullmatch(r"([\d.]+) \((\d+)/(\d+)\)", solved).groups() == (
            f"{n_solved / len(summaries):.2f}", str(n_solved), str(len(summaries)))


def test_report_of_a_single_run_has_a_zero_ci(multirun, tmp_path, capsys):
    (run,) = multirun.glob("trpo/*/seed1")
    assert main([str(run), "--out", str(tmp_path)]) == 0
    rows = table_rows(capsys.readouterr().out)
    final = json.loads((run / "summary.json").read_text())["final_return"]
    assert rows["trpo"][2] == f"{final:.2f} ± 0.00"
    assert (tmp_path / "CartPole-v1_rollout_ep_return.png").stat().st_size > 0


def test_report_without_matplotlib_still_writes_its_tables(multirun, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    assert main([str(multirun), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "report.md").read_text() == printed
    assert "Figures skipped: matplotlib is not installed" in printed
    assert sorted(table_rows(printed)) == ["ppo_clip", "trpo"]
    assert not list(tmp_path.glob("*.png"))


def test_no_runs_is_one_line_on_stderr_and_status_2(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlrun-report: error:") and err.count("\n") == 1


def test_the_module_runs_as_a_command(multirun, tmp_path):
    res = subprocess.run([sys.executable, "-m", "rlrun.report", str(multirun), "--out", str(tmp_path),
                          "--metric", "{algo}/kl", "--points", "20"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "CartPole-v1_algo_kl.png").stat().st_size > 0  # ppo_clip/kl and trpo/kl, one figure


def test_a_hand_edited_summary_a_missing_metric_and_an_unwritable_out_are_one_line(multirun, tmp_path, capsys):
    copy = tmp_path / "sweep"
    shutil.copytree(multirun, copy, ignore=shutil.ignore_patterns("report"))
    (edited,) = copy.glob("trpo/*/seed1")
    (edited / "summary.json").write_text('{"final_return": "great", "status": "completed"}')
    assert main([str(copy), "--out", str(tmp_path / "r1")]) == 0  # the others are reported
    err = capsys.readouterr().err
    assert "summary.json is not used (final_return is 'great', not a number)" in err
    assert main([str(copy), "--metric", "no/such_tag", "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "no run logged --metric no/such_tag" in err and "rollout/ep_return" in err
    (tmp_path / "file").write_text("")
    assert main([str(copy), "--out", str(tmp_path / "file" / "report")]) == 1
    assert "cannot write the report into" in capsys.readouterr().err


def test_a_groups_interval_does_not_depend_on_the_other_runs_in_the_folder(multirun, tmp_path, capsys):
    alone = tmp_path / "alone"
    for run in multirun.glob("trpo/*/seed*"):
        shutil.copytree(run, alone / run.name)
    assert main([str(multirun), "--out", str(tmp_path / "all")]) == 0
    together = table_rows(capsys.readouterr().out)["trpo"]
    assert main([str(alone), "--out", str(tmp_path / "one")]) == 0
    assert table_rows(capsys.readouterr().out)["trpo"] == together


def test_a_seed_twice_in_a_group_is_said(multirun, tmp_path, capsys):
    pooled = tmp_path / "outputs"
    (run,) = multirun.glob("trpo/*/seed1")
    shutil.copytree(run, pooled / "sweep" / run.name)
    shutil.copytree(run, pooled / "alone" / "seed1_run")
    assert main([str(pooled), "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "trpo on CartPole-v1 has seed 1 more than once" in err and "seed1_run" in err
