"""The `callerid` command. Each area registers its sub-commands from its own module."""

from __future__ import annotations

import typer

from callerid import __version__
from callerid.cli import check, db, inbox, reconcile, run, sandbox

app = typer.Typer(no_args_is_help=True, help="Bulk-verify phone numbers as Plivo caller IDs.")


@app.callback()
def _root() -> None:
    """Bulk-verify phone numbers as Plivo caller IDs."""


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


for module in (sandbox, check, db, inbox, run, reconcile):
    module.register(app)


def main() -> None:
    app()
