"""The console log handler of a run (conf/hydra/job_logging/rich.yaml).

On a terminal, rich's handler, so that log lines print above the live progress bar. Anywhere else
(a file, a pipe, every sweep job) plain lines: rich would wrap them at 80 columns and split paths,
and a resume command must be copyable from the log.
"""

from __future__ import annotations

import logging
import sys


def console_handler() -> logging.Handler:
    if sys.stdout.isatty():
        from rich.logging import RichHandler

        return RichHandler(show_path=False, markup=False)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    return handler
