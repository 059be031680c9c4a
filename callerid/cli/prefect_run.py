"""`callerid run`'s Prefect side: the flow in a worker thread, progress bars in this one, and a
calm terminal.

Logs: INFO and up reach the Prefect UI (batches with counts, expiries, 429s absorbed, waits) and
the run's `run.log`; the terminal shows progress bars and warnings only. Tracebacks go to
`run.log`, never to the terminal, unless `--debug`. The environment defaults below are set before
Prefect is imported (it reads its settings then); a value the user set wins.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from callerid.pipeline.options import RunPaths

PREFECT_DEFAULTS = {
    # A fresh PREFECT_HOME's first SQLite migration outlasts Prefect's 20 s default start-up
    # timeout on slow disks (prefect-notes §0.6), and on a busy 2-core machine it took 164 s
    # (measured this session at load 10); these must be set before prefect is imported.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # INFO for the UI and run.log; the console handler keeps the terminal to warnings.
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
}
_FILE_FORMAT = "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"


def prefect_env_defaults() -> None:
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


class _CalmTerminal(logging.Filter):
    """On the terminal: no traceback, and no error of Prefect's engine about the run failing
    (the CLI says that itself, in one line). Both are in run.log and the UI."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            return False
        return not (record.levelno >= logging.ERROR and record.name.startswith("prefect"))


@contextmanager
def run_logging(paths: RunPaths, *, debug: bool) -> Iterator[None]:
    """Send INFO and up (with tracebacks) to `paths.run_log`; keep them off the terminal."""
    import prefect  # noqa: F401  (sets up Prefect's logging, which is adjusted here)
    from prefect.logging.handlers import PrefectConsoleHandler

    paths.root.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(paths.run_log, encoding="utf-8")
    to_file.setLevel(logging.INFO)
    to_file.setFormatter(logging.Formatter(_FILE_FORMAT))
    root = logging.getLogger()
    ours = logging.getLogger("callerid")
    old_level = ours.level
    ours.setLevel(logging.INFO)  # our INFO lines go to run.log (the root logger says WARNING)
    consoles = [h for h in root.handlers if isinstance(h, PrefectConsoleHandler)]
    calm = _CalmTerminal()
    root.addHandler(to_file)
    if not debug:
        for handler in consoles:
            handler.addFilter(calm)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(calm)
        root.removeHandler(to_file)
        to_file.close()
        ours.setLevel(old_level)


def log_failure(exc: BaseException) -> None:
    """The traceback of a failed run, into run.log (the terminal filter keeps it off screen)."""
    logging.getLogger("callerid.cli").error("the run failed", exc_info=exc)


def _run_flow(params: dict[str, Any], box: dict[str, Any]) -> None:
    try:
        from flows.bulk_verify import bulk_verify

        box["result"] = asyncio.run(bulk_verify(**params))
    except BaseException as exc:  # reported by the main thread; nothing is swallowed
        box["error"] = exc


def start_flow(params: dict[str, Any], box: dict[str, Any]) -> threading.Thread:
    """Run the `bulk_verify` flow with `params` in a thread; its result or error lands in `box`."""
    # The copied context carries Prefect's settings (e.g. a test harness's) into the thread.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(_run_flow, params, box), name="bulk-verify")
    thread.start()
    return thread


class _FlowRunLink:
    """Prints the Prefect UI's link to the flow run once the flow has written it."""

    def __init__(self, paths: RunPaths, console: Console) -> None:
        self.paths, self.console, self.done = paths, console, False

    def poll(self) -> None:
        if self.done:
            return
        try:
            info = json.loads(self.paths.flow_run_json.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return
        self.done = True
        if info.get("ui_url") and os.environ.get("PREFECT_API_URL"):
            self.console.print(f"Prefect UI: {info['ui_url']}  ({info.get('name', '')})")


def watch(thread: threading.Thread, paths: RunPaths, console: Console, *, bars: bool) -> None:
    """Until the flow's thread ends: progress bars (or a spinner for a dry run) from the run's
    progress.json, the UI link when the flow run has one, and a line when it waits for people."""
    from callerid.people.announce import Announcer
    from callerid.pipeline.progress import read_progress

    link = _FlowRunLink(paths, console)
    # The run starts waiting for people (a wave of owners' emails, an --ask-person form): one
    # line each, TTY or not (Prefect's console logs are not the place: see announce.py).
    people = Announcer(paths.root, partial(console.print, highlight=False, soft_wrap=True))
    if not bars:
        with console.status("planning (nothing is sent)"):
            while thread.is_alive():
                link.poll()
                thread.join(0.25)
        link.poll()
        return
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    # Redrawn by a thread of its own: 4 times a second on a terminal; not at all elsewhere (a
    # file or a pipe gets the final bars when they stop, and a redraw nobody sees costs the
    # waiting run ~0.5 % of a core).
    with Progress(
        *columns,
        console=console,
        transient=False,
        auto_refresh=console.is_terminal,
        refresh_per_second=4,
    ) as progress_bars:
        final = progress_bars.add_task("starting Prefect and the run", total=None, detail="")
        verified = progress_bars.add_task("verified", total=None, detail="")
        while thread.is_alive():
            link.poll()
            people.poll()
            progress = read_progress(paths.progress_json)
            if progress is not None:
                counts = ", ".join(f"{k} {v}" for k, v in sorted(progress.counts.items()))
                progress_bars.update(
                    final,
                    description=f"numbers final ({progress.phase})",
                    total=progress.total,
                    completed=progress.final,
                    detail=counts,
                )
                progress_bars.update(verified, total=progress.total, completed=progress.verified)
            thread.join(0.25)
        link.poll()
        people.poll()
        progress = read_progress(paths.progress_json)
        if progress is not None:
            progress_bars.update(final, total=progress.total, completed=progress.final)
            progress_bars.update(verified, total=progress.total, completed=progress.verified)
