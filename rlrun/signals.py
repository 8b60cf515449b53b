"""Ctrl-C and SIGTERM stop a run at the end of the current iteration, so it can save its state.

A second Ctrl-C (or SIGTERM) exits at once. SLURM sends SIGTERM before pre-emption.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Iterator

log = logging.getLogger("rlrun")


class StopRequest:
    """Set by a signal handler, read by the training loop between iterations."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)  # the shell convention: 130 for SIGINT, 143 for SIGTERM


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    request = StopRequest()

    def handler(signum: int, frame: object) -> None:
        if request:
            os._exit(128 + signum)
        request.signum = signum
        log.warning("%s received: finishing this iteration, then saving a checkpoint "
                    "(send it again to quit at once)", signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():  # e.g. a launcher's worker thread
        yield request
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
