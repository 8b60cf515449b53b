"""`rlrun-report`: learning curves and a results table for a sweep (or any folder of runs).

    rlrun-report outputs/multirun/<time> [--out DIR] [--metric rollout/ep_return] [--points 100]

Finds every run directory below the path (a folder with `.hydra/config.yaml` and TensorBoard
event files or a `summary.json`), groups the runs by everything but the seed, and writes to
`--out` (default `<path>/report`):
- `<env>_<metric>.png`: per group, the mean curve over seeds with a bootstrap 95% confidence band
  (seeds resampled with replacement), each seed interpolated onto a common grid of env steps over
  the range that all seeds of the group cover;
- `report.md` (also printed): one table per env with the number of seeds, the final return
  (mean +- half-width of its 95% bootstrap CI), its interquartile mean (IQM, Agarwal et al. 2021;
  from 5 seeds up),
  the fraction of runs that reached the env's threshold, the median `solved_step` and the median fps.

A run without `summary.json` (still running, or killed) counts as *incomplete*: its final return
is the mean of the last `solved_window` (20) points of `rollout/ep_return` in its event files (whatever
`--metric` is plotted; `{algo}` in it stands for each run's algorithm, so `--metric '{algo}/kl'`
plots every algorithm's KL), and it takes no
part in the solved fraction, `solved_step` or fps.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from rlrun.config import NON_EXPERIMENT_KEYS, override_key

RETURN_TAG = "rollout/ep_return"  # what an incomplete run's final return is read from
FINAL_WINDOW = 20  # the config's `solved_window` default, for a run whose config lacks it
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
# Overrides that do not define an experiment: the grouping axes themselves, and output-only knobs.
IGNORED_OVERRIDES = frozenset({*NON_EXPERIMENT_KEYS, "env.id", "algo.name"})
EVENTS_GLOB = "events.out.tfevents.*"


@dataclass
class Run:
    """One run directory: what its config, summary.json and event files say."""

    path: Path
    env: str
    algo: str
    seed: int | None
    overrides: tuple[str, ...]  # the job's overrides that define its group (seed, env, algo dropped)
    summary: dict | None
    curve: tuple[np.ndarray, np.ndarray] = field(default=(np.empty(0), np.empty(0)))  # (env steps, metric)
    returns: np.ndarray = field(default_factory=lambda: np.empty(0))  # RETURN_TAG's values, by step
    window: int = FINAL_WINDOW  # the run's `solved_window`: summary.json's final_return averages as many

    @property
    def complete(self) -> bool:
        return self.summary is not None

    @property
    def final_return(self) -> float | None:
        """summary.json's final_return; else the mean of RETURN_TAG's last `window` points."""
        if self.summary is not None and self.summary.get("final_return") is not None:
            return float(self.summary["final_return"])
        return float(np.mean(self.returns[-self.window:])) if len(self.returns) else None


# ---------------------------------------------------------------- statistics (pure)

def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50% (drops floor(n/4) values at each end,
    as `scipy.stats.trim_mean(x, 0.25)` and rliable do; n < 4 gives the plain mean)."""
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0:
        raise ValueError("iqm of no values")
    cut = x.size // 4
    return float(x[cut:x.size - cut].mean())


def bootstrap_ci(values, rng: np.random.Generator, n: int = N_BOOTSTRAP,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean: resample the values with replacement
    n times; the interval holds the central `confidence` mass of the resampled means."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci of no values")
    means = x[rng.integers(0, x.size, size=(n, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_band(curves: np.ndarray, rng: np.random.Generator, n: int = N_BOOTSTRAP,
                   confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """bootstrap_ci of the mean curve, pointwise: curves is (seeds, points); the seeds (whole
    curves) are resampled with replacement."""
    idx = rng.integers(0, curves.shape[0], size=(n, curves.shape[0]))
    means = curves[idx].mean(axis=1)  # (n, points)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return low, high


def common_grid(curves: list[tuple[np.ndarray, np.ndarray]], points: int) -> np.ndarray:
    """`points` env steps spanning the range that every curve covers (all of them, if they do not
    overlap); curves must be non-empty."""
    lo = max(float(x[0]) for x, _ in curves)
    hi = min(float(x[-1]) for x, _ in curves)
    if lo > hi:
        lo, hi = min(float(x[0]) for x, _ in curves), max(float(x[-1]) for x, _ in curves)
    return np.linspace(lo, hi, points) if hi > lo else np.array([lo])


def interpolate(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """(seeds, points): each curve linearly interpolated onto the grid (np.interp)."""
    return np.stack([np.interp(grid, x, y) for x, y in curves])


# ---------------------------------------------------------------- finding and reading runs

def _is_run_dir(path: Path) -> bool:
    return ((path / ".hydra" / "config.yaml").is_file()
            and ((path / "summary.json").is_file() or any(path.glob(EVENTS_GLOB))))


def find_runs(root: Path) -> list[Path]:
    """Every run directory at or below root (not below another run directory), sorted."""
    root = Path(root)
    if _is_run_dir(root):
        return [root]
    found = []
    for config in sorted(root.rglob(".hydra/config.yaml")):
        run = config.parent.parent
        if _is_run_dir(run) and not any(_is_run_dir(p) for p in run.parents if p.is_relative_to(root)):
            found.append(run)
    return found


def group_overrides(overrides: list[str]) -> tuple[str, ...]:
    """The overrides that tell one experiment from another: all but IGNORED_OVERRIDES, sorted."""
    return tuple(sorted(o for o in overrides if override_key(o) not in IGNORED_OVERRIDES))


def read_scalars(run_dir: Path, tags: list[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{tag: (steps, values)} from run_dir's event files, sorted by step; empty arrays if absent.
    ``tags=None``: every scalar tag the run logged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series = {tag: (np.empty(0), np.empty(0)) for tag in tags or []}
    if not any(run_dir.glob(EVENTS_GLOB)):
        return series
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    logged = set(acc.Tags()["scalars"])
    for tag in logged if tags is None else set(tags) & logged:
        events = sorted(acc.Scalars(tag), key=lambda e: e.step)
        series[tag] = (np.array([e.step for e in events], dtype=float),
                       np.array([e.value for e in events], dtype=float))
    return series


SUMMARY_NUMBERS = ("final_return", "solved_step", "fps", "steps_done")


def _checked_summary(summary: object) -> dict:
    """A summary.json's content, if it has the shape rlrun writes (a hand-edited one may not)."""
    if not isinstance(summary, dict):
        raise ValueError("not a JSON object")
    for key in SUMMARY_NUMBERS:
        value = summary.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{key} is {value!r}, not a number")
    return summary


def read_run(path: Path, metric: str) -> Run:
    """A Run from its directory; a missing or unreadable summary.json makes it incomplete."""
    cfg = OmegaConf.load(path / ".hydra" / "config.yaml")
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = list(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
    try:
        summary = _checked_summary(json.loads((path / "summary.json").read_text()))
    except (OSError, ValueError) as err:
        if (path / "summary.json").exists():
            print(f"rlrun-report: warning: {path / 'summary.json'} is not used ({err})", file=sys.stderr)
        summary = None
    seed = OmegaConf.select(cfg, "seed")
    algo = str(OmegaConf.select(cfg, "algo.name"))
    tag = metric.replace("{algo}", algo)  # {algo}/kl: each run's own trust-region tags
    scalars = read_scalars(path, [tag, RETURN_TAG])
    window = OmegaConf.select(cfg, "solved_window", default=FINAL_WINDOW)
    return Run(path=path, env=str(OmegaConf.select(cfg, "env.id")), algo=algo,
               seed=None if seed is None else int(seed), overrides=group_overrides(overrides),
               summary=summary, curve=scalars[tag], returns=scalars[RETURN_TAG][1],
               window=int(window))


# ---------------------------------------------------------------- grouping

GroupKey = tuple[str, str, tuple[str, ...]]  # (env id, algo name, overrides but seed/env/algo)


def group_key(run: Run) -> GroupKey:
    return (run.env, run.algo, run.overrides)


def group_runs(runs: list[Run]) -> dict[GroupKey, list[Run]]:
    """Runs grouped by everything but the seed, in sorted key order, each group sorted by seed."""
    groups: dict[GroupKey, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    return {k: sorted(groups[k], key=lambda r: (r.seed is None, r.seed or 0, str(r.path))) for k in sorted(groups)}


def group_labels(keys: list[GroupKey]) -> dict[GroupKey, str]:
    """`ppo_clip algo.clip_eps=0.1`: the algo and the overrides that are not shared by all keys."""
    shared = set.intersection(*(set(k[2]) for k in keys)) if keys else set()
    return {k: " ".join([k[1], *(o for o in k[2] if o not in shared)]) for k in keys}


# ---------------------------------------------------------------- table and plot

@dataclass
class Row:
    """One group's line of the table."""

    label: str
    n_seeds: int
    n_incomplete: int
    final_mean: float | None
    final_ci_half: float | None
    final_iqm: float | None
    solved: int
    with_summary: int
    median_solved_step: float | None
    median_fps: float | None


def summarize(label: str, runs: list[Run], rng: np.random.Generator) -> Row:
    finals = [r.final_return for r in runs if r.final_return is not None]
    summaries = [r.summary for r in runs if r.summary is not None]
    solved_steps = [s["solved_step"] for s in summaries if s.get("solved_step") is not None]
    fps = [s["fps"] for s in summaries if s.get("fps") is not None]
    mean = half = iq = None
    if finals:
        low, high = bootstrap_ci(finals, rng)
        mean, half = float(np.mean(finals)), (high - low) / 2.0
        iq = iqm(finals) if len(finals) >= IQM_MIN_SEEDS else None  # below, the middle half is the mean
    return Row(label=label, n_seeds=len(runs), n_incomplete=sum(not r.complete for r in runs),
               final_mean=mean, final_ci_half=half, final_iqm=iq, solved=len(solved_steps),
               with_summary=len(summaries),
               median_solved_step=float(np.median(solved_steps)) if solved_steps else None,
               median_fps=float(np.median(fps)) if fps else None)


TABLE_HEADER = ["group", "seeds", "incomplete", "final return (mean ± 95% CI)", "IQM", "solved",
                "median solved_step", "median fps"]


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    for r in rows:
        final = "-" if r.final_mean is None else f"{r.final_mean:.2f} ± {r.final_ci_half:.2f}"
        solved = "-" if r.with_summary == 0 else f"{r.solved / r.with_summary:.2f} ({r.solved}/{r.with_summary})"
        cells = [r.label, str(r.n_seeds), str(r.n_incomplete), final, _num(r.final_iqm), solved,
                 _num(r.median_solved_step, "{:.0f}"), _num(r.median_fps, "{:.0f}")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sanitize(name: str) -> str:
    """A file-name-safe version of an env id or tag: `rollout/ep_return` -> `rollout_ep_return`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None where matplotlib is not installed
    (it is a dependency, but an install with --no-deps or a trimmed environment may lack it)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


IQM_MIN_SEEDS = 5
LEGEND_WIDTH = 45  # characters of a legend label's line


def group_rng(key: GroupKey) -> np.random.Generator:
    """The bootstrap's generator for one group, seeded by the group itself: its intervals do not
    depend on which other runs share the folder or the order they are read in."""
    return np.random.default_rng([BOOTSTRAP_SEED, zlib.crc32(repr(key).encode())])


def plot_env(env: str, groups: dict[GroupKey, list[Run]], labels: dict[GroupKey, str], metric: str,
             points: int, out: Path, plt) -> Path | None:
    """The env's learning curves (mean over seeds, bootstrap 95% band) as a PNG; None when no run
    of the env logged the metric."""

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for key, runs in groups.items():
        curves = [r.curve for r in runs if len(r.curve[0])]
        if not curves:
            continue
        grid = common_grid(curves, points)
        ys = interpolate(curves, grid)
        label = textwrap.fill(f"{labels[key]} (n={len(curves)})", LEGEND_WIDTH, subsequent_indent="  ")
        (line,) = ax.plot(grid, ys.mean(axis=0), label=label)
        if len(curves) > 1:
            low, high = bootstrap_band(ys, group_rng(key))
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric)
    ax.set_title(f"{env}: {metric} (mean over seeds, bootstrap {CONFIDENCE:.0%} CI)")
    ax.grid(alpha=0.3)
    # below the axes, where a sweep's long labels (its overrides) cover no curve and are not cut off
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)
    path = out / f"{sanitize(env)}_{sanitize(metric)}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


# ---------------------------------------------------------------- entry point

def build_report(runs: list[Run], metric: str, points: int, out: Path) -> str:
    """Write one PNG per env and report.md into out; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    plt = pyplot()
    sections = [f"# rlrun report: {metric}", ""]
    if plt is None:
        sections += ["Figures skipped: matplotlib is not installed (`pip install matplotlib`).", ""]
    for env in sorted({k[0] for k in groups}):
        env_groups = {k: v for k, v in groups.items() if k[0] == env}
        labels = group_labels(list(env_groups))
        rows = [summarize(labels[k], v, group_rng(k)) for k, v in env_groups.items()]
        png = None if plt is None else plot_env(env, env_groups, labels, metric, points, out, plt)
        sections += [f"## {env}", "", markdown_table(rows), ""]
        if png is not None:
            sections += [f"![{env}]({png.name})", ""]
    sections.append(f"Final return: summary.json's `final_return`; for incomplete runs (no summary.json) the "
                    f"mean of the last `solved_window` (default {FINAL_WINDOW}) points of `{RETURN_TAG}`. "
                    f"CI: percentile bootstrap over seeds ({N_BOOTSTRAP} resamples). Solved: runs with a "
                    f"`solved_step` / runs with a summary. IQM: from {IQM_MIN_SEEDS} seeds up (with fewer, the "
                    f"middle half of the seeds is all of them or nearly).")
    text = "\n".join(sections) + "\n"
    (out / "report.md").write_text(text)
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rlrun-report", description=__doc__.split("\n\n")[0])
    p.add_argument("path", type=Path, help="a multirun folder, an outputs folder or one run folder")
    p.add_argument("--out", type=Path, default=None,
                   help="where to write the PNGs and report.md (default <path>/report)")
    p.add_argument("--metric", default="rollout/ep_return",
                   help="the scalar tag to plot (default rollout/ep_return); {algo} stands for each run's "
                        "algorithm, e.g. '{algo}/kl' for the exact KL of every algorithm's steps")
    p.add_argument("--points", type=int, default=100, help="points of the common env-step grid (default 100)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.points < 1:
        print("rlrun-report: error: --points must be >= 1", file=sys.stderr)
        return 2
    if not args.path.is_dir():
        print(f"rlrun-report: error: no such directory: {args.path}", file=sys.stderr)
        return 2
    paths = find_runs(args.path)
    if not paths:
        print(f"rlrun-report: error: no run directories (.hydra/config.yaml with event files or "
              f"summary.json) below {args.path}", file=sys.stderr)
        return 2
    runs = []
    for path in paths:
        try:
            runs.append(read_run(path, args.metric))
        except Exception as exc:  # noqa: BLE001 - a corrupt run folder is skipped with one line
            print(f"rlrun-report: warning: skipping {path}: {exc}", file=sys.stderr)
    if not runs:
        print(f"rlrun-report: error: no readable run below {args.path}", file=sys.stderr)
        return 2
    if not any(len(run.curve[0]) for run in runs):
        logged = sorted({tag for run in runs for tag in read_scalars(run.path)})
        print(f"rlrun-report: error: no run logged --metric {args.metric}; the runs logged: {', '.join(logged)}",
              file=sys.stderr)
        return 2
    for key, group in group_runs(runs).items():  # e.g. a stand-alone run beside a sweep's job
        seeds = [run.seed for run in group]
        for seed in sorted({s for s in seeds if s is not None and seeds.count(s) > 1}):
            paths = ", ".join(str(run.path) for run in group if run.seed == seed)
            print(f"rlrun-report: warning: {key[1]} on {key[0]} has seed {seed} more than once ({paths}); they "
                  f"are pooled as separate seeds: pass one sweep's folder to keep them apart", file=sys.stderr)
    out = args.out if args.out is not None else args.path / "report"
    try:
        print(build_report(runs, args.metric, args.points, out), end="")
        written = sorted(p.name for p in out.glob("*.png"))
        print(f"rlrun-report: wrote {out / 'report.md'}" + (f" and {', '.join(written)} in {out}" if written else ""),
              file=sys.stderr)
    except OSError as err:
        print(f"rlrun-report: error: cannot write the report into {out} ({err.strerror or err}); "
              f"--out DIR writes it elsewhere", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
