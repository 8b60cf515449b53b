"""Imported first by the batched launcher's fork server (``rlrun.launch.batched.GROUP_IMPORTS``) and
by nothing else: it blocks SIGINT and SIGTERM (``rlrun.launch.batched.STOPS``) in the server's process. Blocked, not ignored: each
group's process inherits the mask, so a stop sent to it while it starts (before it has handlers)
stays pending until :func:`rlrun.launch.batched._chunk_process` unblocks it, instead of being lost."""

import signal

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # rlrun.launch.batched.STOPS
