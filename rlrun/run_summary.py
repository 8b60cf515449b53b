"""``summary.json``: what a run did, written once when it ends however it ends, and the value a
sweeper optimises from it."""

from __future__ import annotations

import json
import math
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlrun.checkpoint import write_atomically

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from rlrun.run_state import RunState


def run_summary(cfg: DictConfig, run: RunState, status: str, wall_s: float, update_s_per_iter: float,
                error: str | None) -> dict[str, Any]:
    tracker = run.tracker
    return {
        "algo": cfg.algo.name, "env": cfg.env.id, "seed": cfg.seed, "status": status,
        "total_steps": cfg.total_steps, "steps_done": run.steps, "iterations": run.iteration,
        "wall_s": round(wall_s, 3), "fps": round(run.steps / wall_s, 1) if wall_s > 0 else 0.0,
        "final_return": tracker.mean_return() if tracker.recent else None,
        "threshold": tracker.threshold, "solved_step": tracker.solved_step,
        "solved_wall_s": None if tracker.solved_wall_s is None else round(tracker.solved_wall_s, 3),
        "update_s_per_iter": round(update_s_per_iter, 5),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **(run.evaluator.summary() if run.evaluator is not None else {}),
        "error": error,
    }


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Atomically, as strict JSON (a non-finite number is null); raises OutputError (a full disk)."""
    plain = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()}
    text = json.dumps(plain, indent=2, allow_nan=False) + "\n"
    write_atomically(run_dir / "summary.json", lambda tmp: tmp.write_text(text))


def objective_value(summary: dict[str, Any], key: str) -> float:
    """The summary value a sweeper optimises. A run that never solved the env scores, for
    ``solved_step`` / ``solved_wall_s``, the steps / seconds it ran: the least it would have
    needed, worse than any trial that solved it (a NaN would fail the trial). NaN only where there
    is no value at all (no episode finished), which fails that trial alone."""
    censored = {"solved_step": "steps_done", "solved_wall_s": "wall_s"}
    value = summary.get(key)
    if value is None and key in censored:
        value = summary.get(censored[key])
    return float("nan") if value is None else float(value)
