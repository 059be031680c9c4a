"""What the terminal shows when a command fails in a way it did not plan for: one line, and the
path of a log file under the output folder that holds the traceback. `--debug` shows the
traceback on the terminal instead (and Prefect's own error logs with it, for `callerid run`)."""

from __future__ import annotations

import os
import re
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from callerid.masking import mask_codes_in_text

if TYPE_CHECKING:
    import typer

_state = {"debug": False}


def set_debug(on: bool) -> None:
    """Set by the root callback on every invocation (so one `--debug` does not outlive its
    command in a process that runs several, like a test); commands may only turn it on."""
    _state["debug"] = on


def debugging() -> bool:
    return _state["debug"]


def one_line(exc: BaseException) -> str:
    """`ExcType: message` on one line, cut to a terminal's width or so, any code masked."""
    text = mask_codes_in_text(" ".join(str(exc).split())) or "(no message)"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}"


def log_folder() -> Path:
    """`<output folder>/logs` (the output folder as the settings say, `out` if they cannot)."""
    try:
        from callerid.settings import load_settings

        output = load_settings().output_dir
    except Exception:  # the settings themselves may be what is broken
        output = Path(os.environ.get("CALLERID_OUTPUT_DIR") or "out")
    return output / "logs"


def write_traceback(exc: BaseException, path: Path | None = None) -> Path:
    """Append `exc`'s traceback to `path` (default: a new file in `log_folder()`)."""
    if path is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        path = log_folder() / f"callerid-{stamp}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} callerid {safe_argv()}\n")
        fh.write("".join(_masked(traceback.format_exception(exc))))
    return path


_SECRET_OPTION = re.compile(r"^--?[\w-]*(token|password|secret)[\w-]*$", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def safe_argv(argv: list[str] | None = None) -> list[str]:
    """The command line for a log: codes (`otp submit NUMBER CODE`) masked, the values of
    token/password/secret options and any password in a URL replaced by `****`."""
    args = list(sys.argv[1:] if argv is None else argv)
    out: list[str] = []
    hide_next = False
    for arg in args:
        name, eq, _ = arg.partition("=")
        if hide_next:
            out.append("****")
        elif eq and _SECRET_OPTION.match(name):
            out.append(f"{name}=****")
        else:
            out.append(_scrub(arg))
        hide_next = not eq and bool(_SECRET_OPTION.match(arg))
    return out


def _scrub(text: str) -> str:
    """`text` with codes masked and any password in a URL replaced."""
    return _URL_PASSWORD.sub(r"\1****@", mask_codes_in_text(text))


def _masked(lines: list[str]) -> list[str]:
    """A traceback's messages scrubbed (an exception may quote a statement's values); its
    `File ..., line N` frames as they are."""
    return [line if line.startswith('  File "') else _scrub(line) for line in lines]


def run_app(app: typer.Typer) -> None:
    """Run the CLI; an uncaught exception becomes one line and a log file (exit 1)."""
    try:
        app()
    except Exception as exc:
        if debugging():
            raise
        try:
            where = f"details in {write_traceback(exc).resolve()}"
        except OSError as log_error:
            where = f"(no log file: {log_error.strerror}; rerun with --debug for details)"
        print(f"error: {one_line(exc)}\n  {where}", file=sys.stderr)
        sys.exit(1)
