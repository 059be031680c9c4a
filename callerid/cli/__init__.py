"""The `callerid` command. Each area registers its sub-commands from its own module.

Start-up is kept light: the command modules import Prefect, pandas and SQLAlchemy inside the
commands that use them, so `callerid --help` (and a mistyped option) answers at once. Anything a
command does not catch is written with its traceback to a log file under the output folder and
summed up in one line; `--debug` shows the traceback on the terminal instead.
"""

from __future__ import annotations

from typing import Annotated

import typer

from callerid import __version__
from callerid.cli import check, crash, db, inbox, reconcile, run, sandbox

app = typer.Typer(
    # Plain help: typer's rich help imports more than the rest of `callerid --help` together.
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Bulk-verify phone numbers as Plivo caller IDs.",
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show tracebacks on the terminal (otherwise they go to a log file)."
        ),
    ] = False,
) -> None:
    """Bulk-verify phone numbers as Plivo caller IDs."""
    crash.set_debug(debug)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


for module in (sandbox, check, db, inbox, run, reconcile):
    module.register(app)


def main() -> None:
    crash.run_app(app)
