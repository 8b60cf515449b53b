"""Finished training episodes, and the running mean of the last few that summary.json reports."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Episode:
    ret: float  # undiscounted, unnormalised return
    length: int
    step: int  # global env step at which it finished


@dataclass
class EpisodeTracker:
    """The last ``window`` training episodes, and when their mean first reached the threshold."""

    window: int
    threshold: float | None
    recent: deque = field(init=False)
    solved_step: int | None = None
    solved_wall_s: float | None = None

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.window)

    def add(self, episodes: list[Episode], wall_s: float) -> None:
        for ep in episodes:
            self.recent.append(ep.ret)
            if (self.solved_step is None and self.threshold is not None and len(self.recent) == self.window
                    and self.mean_return() >= self.threshold):
                self.solved_step, self.solved_wall_s = ep.step, wall_s

    def mean_return(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")

    def state_dict(self) -> dict:
        return {"recent": list(self.recent), "solved_step": self.solved_step, "solved_wall_s": self.solved_wall_s}

    def load_state_dict(self, state: dict) -> None:
        self.recent.extend(state["recent"])
        self.solved_step, self.solved_wall_s = state["solved_step"], state["solved_wall_s"]
