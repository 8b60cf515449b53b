"""The console log handler of a run (conf/hydra/job_logging/rich.yaml).

On a terminal, rich's handler, so that log lines print above the live progress bar; anywhere else
(a file, a pipe, every sweep job) a plain stream handler. Both write each record as one line,
``[date time] LEVEL message``, never wrapped at the terminal's width (rich's own layout would split
a path or a resume command over lines, and pasting them would run half a command); the terminal
folds a long line for display only, and a copy of it is whole.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def console_handler() -> logging.Handler:
    if sys.stdout.isatty():
        return one_line_rich_handler()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(message)s", TIME_FORMAT))
    return handler


def one_line_rich_handler(console=None) -> logging.Handler:
    """rich's handler (it keeps a live progress bar below the log) rendering each record as one
    unwrapped line in the plain handler's format."""
    from rich import get_console
    from rich.logging import RichHandler
    from rich.text import Text

    class OneLine(RichHandler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                when = datetime.fromtimestamp(record.created).strftime(TIME_FORMAT)
                level = record.levelname
                line = Text.assemble(f"[{when}] ", (level, f"logging.level.{level.lower()}"), " ", self.format(record))
                self.console.print(line, soft_wrap=True)  # one line, whatever the width
            except Exception:  # noqa: BLE001 - logging's contract: a handler never raises
                self.handleError(record)

    # the console the progress bar draws on (rich's global one), so lines print above the bar
    return OneLine(console=console or get_console(), show_path=False, markup=False)
