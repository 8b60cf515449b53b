"""Running totals of an algorithm's per-update events (a rejected step, a halved lambda), for
charts that stay readable: a 0/1 flag per update, smoothed by TensorBoard, draws as a fading
curve on an axis of 0 to a few hundredths, and with ``log_every`` > 1 only every n-th update's
flag is written at all. A total since the run started counts every update, whatever is written."""

from __future__ import annotations


class Tally:
    """Totals of named events over the updates so far, ``<namespace>/updates`` among them."""

    def __init__(self, namespace: str, events: tuple[str, ...]):
        self.namespace = namespace
        self.totals = {"updates": 0, **{event: 0 for event in events}}

    def add(self, **happened: bool) -> dict[str, float]:
        """Count one update and the events that ``happened`` in it; the totals, as metrics."""
        unknown = set(happened) - set(self.totals)
        if unknown:
            raise KeyError(f"not an event of this tally: {', '.join(sorted(unknown))}")
        self.totals["updates"] += 1
        for event, occurred in happened.items():
            self.totals[event] += int(bool(occurred))
        return {f"{self.namespace}/{event}": float(total) for event, total in self.totals.items()}

    def state_dict(self) -> dict[str, int]:
        return dict(self.totals)

    def load_state_dict(self, state: dict[str, int] | None) -> None:
        """``None`` (a checkpoint from before the tally): the totals start again from 0."""
        for event in self.totals:
            self.totals[event] = int((state or {}).get(event, 0))
