"""How a long-running command (`callerid inbox serve`, `callerid sandbox serve`) is stopped.

Ctrl-C (SIGINT) and `kill` (SIGTERM) both end it cleanly, whatever the dispositions it inherited:
a command started in the background by a non-interactive shell (a script's `&`, a CI job) inherits
SIGINT *ignored*, and Python then installs no KeyboardInterrupt handler, so a server that relied on
the default stayed up forever when sent SIGINT.
"""

from __future__ import annotations

import signal
import threading


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """From now on SIGINT and SIGTERM raise KeyboardInterrupt (main thread only). Call it before
    saying the server is up: a signal sent on seeing that line must not find the old disposition."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def wait_until_stopped() -> None:
    """Block until SIGINT or SIGTERM arrives (see `stop_on_signals`, called here too)."""
    stop_on_signals()
    threading.Event().wait()
