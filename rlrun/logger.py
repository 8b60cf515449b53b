"""TensorBoard event files and what the user sees while a run goes: a rich bar or log lines.

Only the trainer calls this module; algorithms return flat ``namespace/name -> float`` dicts.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from rlrun.algos.registry import algorithms
from rlrun.config import NON_EXPERIMENT_KEYS, tuned_settings
from rlrun.event_file import EventFile

log = logging.getLogger("rlrun")

# The returns, written once more under a capitalised group. TensorBoard's SCALARS and TIME SERIES
# pages list tag groups by name, capitals before lower case, and TIME SERIES opens only the first
# two groups: so they open on the returns whichever the algorithm, instead of on acktr/* or eval/*.
# (The trust-region quantities are each written once, in the algorithm's namespace: <algo>/kl
# beside <algo>/max_kl or kl_target, so that its charts show its own runs only.)
HEADLINE_ALIASES = {
    "rollout/ep_return": "Returns/train",
    "rollout/ep_return_mean": "Returns/train_mean",
    "eval/mean_return": "Returns/eval",
}
# The HParams table's metrics: the mean return of the last `solved_window` episodes (its last point
# is summary.json's final_return) and the speed, read from the last point of these series.
HPARAM_METRICS = ("Returns/train_mean", "time/fps")


# The custom-scalars tab: the returns, then each algorithm's charts (Registration.charts), its
# trust-region quantity beside its bound. Every regex is anchored and names a tag of one
# algorithm's namespace only, so a chart shows only that algorithm's runs.
def _chart(*tags: str) -> list:
    return ["Multiline", [f"^{tag}$" for tag in tags]]


CUSTOM_SCALARS = {
    "returns": {
        "episode return (training)": _chart("Returns/train"),
        "mean of the last solved_window episodes (training)": _chart("Returns/train_mean"),
        "deterministic evaluation (eval_every)": _chart("Returns/eval"),
    },
    **{reg.title: {title: _chart(*tags) for title, tags in reg.charts.items()}
       for reg in algorithms().values() if reg.charts},
}


# TensorBoard's HParams table shows the first 5 columns by name by default (docs/algorithms.md).
# So every run writes few: algo, env, seed, the algorithm's trust-region knob (its own column,
# Registration.trust_region_key), plus each key overridden on the command line (what a sweep
# varies). The full config is in the TEXT tab.


def hparam_value(value) -> float | str:
    """A config value as the HParams plugin takes it: numbers as floats, None as NaN, the rest as text."""
    if value is None:
        return float("nan")
    if isinstance(value, (int, float)):  # bool too
        return float(value)
    return str(value)


def run_hparams(cfg: DictConfig, overridden: Sequence[str]) -> dict[str, float | str]:
    name = cfg.algo.name
    trust_region_key = algorithms()[name].trust_region_key
    # the seed as text: HParams shows numbers with four decimals (0.0000)
    hparams: dict[str, float | str] = {"algo": name, "env": cfg.env.id, "seed": str(cfg.seed)}
    if trust_region_key:  # its own column (algo.max_kl, algo.clip_eps, ...), not one shared by all
        hparams[f"algo.{trust_region_key}"] = hparam_value(cfg.algo.get(trust_region_key))
    for key in overridden:
        if key not in NON_EXPERIMENT_KEYS:
            hparams[key] = hparam_value(OmegaConf.select(cfg, key, default=None))
    return hparams


def run_layout(written: set[str], evaluates: bool) -> dict:
    """CUSTOM_SCALARS cut to the charts all of whose tags a run writes (``written``, with the
    evaluation's when it ``evaluates``); categories left empty are dropped."""
    tags = written | ({"Returns/eval"} if evaluates else set())
    layout = {}
    def shown(category: str, regexes: list[str]) -> bool:
        if category == "returns" and regexes != ["^Returns/eval$"]:
            return True  # every run's episodes end sooner or later
        return all(any(re.fullmatch(regex.strip("^$"), tag) for tag in tags) for regex in regexes)

    for category, charts in CUSTOM_SCALARS.items():
        kept = {title: chart for title, chart in charts.items() if shown(category, chart[1])}
        if kept:
            layout[category] = kept
    return layout


class TensorBoardLogger:
    def __init__(self, run_dir: Path, cfg: DictConfig, purge_step: int | None = None):
        self.writer = EventFile(run_dir, purge_step=purge_step)
        self.writer.text("config", "```yaml\n" + OmegaConf.to_yaml(cfg) + "```")
        if cfg.tuned_file:
            values = "\n".join(f"{key}: {value}" + ("" if now == value else f"  # overridden on the command line: {now}")
                               for key, value, now in tuned_settings(cfg))
            self.writer.text("tuned", f"{cfg.tuned_file} (tuned=none: without it) set:\n```yaml\n{values}\n```")
        self.evaluates = cfg.eval_every > 0
        self.written: set[str] = set()  # every tag written so far
        self.layout_written = False

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        values = []
        for tag, value in metrics.items():
            values.append((tag, value))
            if tag in HEADLINE_ALIASES:
                values.append((HEADLINE_ALIASES[tag], value))
        self.writer.scalars(values, step)
        self.written.update(tag for tag, _ in values)

    def write_layout(self) -> None:
        """The CUSTOM SCALARS tab for this run, once its first update's metrics are written: the
        returns (evaluation only with eval_every), and the charts of its own algorithm all of whose
        tags it writes. TensorBoard merges the runs' layouts, so a tab shows only what some run logged."""
        if not self.layout_written:
            self.writer.custom_scalars(run_layout(self.written, self.evaluates))
            self.layout_written = True

    def hparams(self, cfg: DictConfig, overridden: Sequence[str]) -> None:
        """The HParams table entry of this run (``run_hparams``; NaN = not a knob of this algorithm).
        Its metrics are existing series (HPARAM_METRICS), not single-point tags of their own."""
        self.writer.hparams(run_hparams(cfg, overridden), HPARAM_METRICS)

    def flush(self) -> None:
        """Write every pending event to the file now (the writer otherwise flushes every 10 s)."""
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class ProgressReporter:
    """A rich progress bar on a terminal; plain periodic log lines otherwise (or in multirun workers)."""

    def __init__(self, total_steps: int, mode: str, description: str, line_every_s: float = 10.0):
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "lines"
        self.mode, self.total, self.line_every_s = mode, total_steps, line_every_s
        self.last_line = 0.0
        self.progress = None
        if mode == "bar":  # (rich.progress imported here: a run without a bar does not pay for it)
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[fps]:>7} steps/s"), TextColumn("return {task.fields[ret]}"),
                TimeElapsedColumn(), TimeRemainingColumn(),
            )
            self.task = self.progress.add_task(description, total=total_steps, fps="-", ret="-")
            self.progress.start()

    def update(self, steps: int, fps: float, ret: float) -> None:
        ret_text = "-" if math.isnan(ret) else f"{ret:.1f}"
        if self.progress is not None:
            self.progress.update(self.task, completed=steps, fps=f"{fps:.0f}", ret=ret_text)
        elif self.mode == "lines" and (time.monotonic() - self.last_line >= self.line_every_s or steps >= self.total):
            self.last_line = time.monotonic()
            log.info("step %d/%d  %.0f steps/s  return %s", steps, self.total, fps, ret_text)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
