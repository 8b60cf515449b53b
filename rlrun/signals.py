"""Ctrl-C, SIGTERM, SIGHUP (a closed terminal or ssh session), SIGUSR1 and SIGUSR2 stop a run at the
end of the current iteration, so it can save its state.

A second signal exits at once, unless it is the same signal within ``REPEAT_S`` of the first: GNU
``timeout`` (without ``--foreground``) sends its signal to the run and then to the run's whole process
group, so the run receives it twice at once, and a ``kill`` of a job's process group does the same.
SLURM sends SIGTERM before pre-emption; SIGUSR2 is the warning
before a time limit or pre-emption that submitit asks SLURM for (``--signal=USR2@<s>``). After the
save, :meth:`StopRequest.hand_over` gives SIGUSR2 to the handler that was there before (submitit's,
which requeues the job; the requeued job then continues from the checkpoint).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Iterator

log = logging.getLogger("rlrun")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
REPEAT_S = 1.0  # the same signal again within this many seconds is one delivery twice, not a second request


class StopRequest:
    """Set by a signal handler, read by the training loop between iterations."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at = 0.0  # time.monotonic() of the first signal
        self.previous: dict[int, object] = {}  # the handlers these signals had before the run

    def __bool__(self) -> bool:
        return self.signum is not None

    def ask(self, signum: int, why: str) -> None:
        """Stop at the end of this iteration and save, as on ``signum`` (its exit status)."""
        self.signum, self.at = signum, time.monotonic()
        log.warning("%s: finishing this iteration, then saving a checkpoint (send it again to quit at once)", why)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)  # the shell convention: 130 for SIGINT, 143 for SIGTERM

    def hand_over(self) -> None:
        """After the run has saved: pass a SIGUSR2 on to the handler installed before the run, if
        one was (submitit's requeue, which exits the process); after a SLURM pre-emption's SIGTERM,
        wait to be requeued (:func:`rlrun.slurm.wait_for_requeue`); otherwise return."""
        from rlrun import slurm

        handler = self.previous.get(signal.SIGUSR2)
        if self.signum == signal.SIGUSR2 and callable(handler):
            log.warning("handing SIGUSR2 over to the job's own handler (submitit: requeue)")
            handler(self.signum, None)
        elif self.signum == signal.SIGTERM and slurm.preempted():
            slurm.wait_for_requeue()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    request = StopRequest()

    def handler(signum: int, frame: object) -> None:
        if request:
            if signum == request.signum and time.monotonic() - request.at < REPEAT_S:
                return  # the same signal delivered twice (timeout's process-group kill): still saving
            os._exit(128 + signum)
        request.ask(signum, f"{signal.Signals(signum).name} received")

    if threading.current_thread() is not threading.main_thread():  # e.g. a launcher's worker thread
        yield request
        return
    # nohup ignores SIGHUP so that a run outlives its terminal: that choice is kept
    signals = [s for s in STOP_SIGNALS if not (s == signal.SIGHUP and signal.getsignal(s) == signal.SIG_IGN)]
    request.previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield request
    finally:
        for sig, old in request.previous.items():
            signal.signal(sig, old)
