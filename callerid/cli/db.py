"""`callerid db upgrade|current` and `callerid status`.

The database is `--url`, else CALLERID_DATABASE_URL, else the SQLite file under the output folder.
SQLite ledgers migrate themselves when opened; `db upgrade` is for servers (PostgreSQL) that
migrate as a deploy step. Passwords in URLs are masked in everything printed. Exit status: 0 done,
1 no ledger there yet (status), 2 the database cannot be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from callerid.settings import load_settings

db_app = typer.Typer(no_args_is_help=True, help="The ledger's database: schema migrations.")
console = Console()

DatabaseUrl = Annotated[
    str | None, typer.Option("--url", help="Ledger database URL (default: CALLERID_DATABASE_URL).")
]


def _url(given: str | None) -> str:
    return given or load_settings().resolved_database_url()


def _unreachable(url: str, exc: SQLAlchemyError) -> typer.Exit:
    from sqlalchemy.engine import make_url

    masked = make_url(url).render_as_string(hide_password=True)
    console.print(f"[red]cannot use the ledger at {masked}: {type(exc).__name__}[/red]")
    return typer.Exit(2)


@db_app.command("upgrade")
def upgrade(url: DatabaseUrl = None) -> None:
    """Create or migrate the ledger's tables to the newest schema."""
    from callerid.ledger import open_ledger

    target = _url(url)
    try:
        with open_ledger(target, migrate=False) as ledger:
            before = ledger.revision()
            changed = ledger.upgrade()
            after = ledger.revision()
            where = ledger.url
    except SQLAlchemyError as exc:
        raise _unreachable(target, exc) from None
    if changed:
        console.print(f"ledger at {where}: {before or 'empty'} -> {after}")
    else:
        console.print(f"ledger at {where}: already at {after}")


@db_app.command("current")
def current(url: DatabaseUrl = None) -> None:
    """Print the schema revision of the ledger and the newest one this version knows."""
    from callerid.ledger import open_ledger
    from callerid.ledger.migrate import head_revision

    target = _url(url)
    try:
        with open_ledger(target, migrate=False) as ledger:
            revision = ledger.revision()
    except SQLAlchemyError as exc:
        raise _unreachable(target, exc) from None
    console.print(f"current: {revision or 'none (empty database)'}  head: {head_revision()}")


def _missing_sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def status(
    url: DatabaseUrl = None,
    account: Annotated[
        str | None, typer.Option(help="Only this Plivo account (default: every account).")
    ] = None,
) -> None:
    """How many numbers are in each state, per account, and the latest runs."""
    from callerid.ledger import NumberStatus, open_ledger

    target = _url(url)
    missing = _missing_sqlite_file(target)
    if missing is not None:  # do not create an empty ledger just to say it is empty
        console.print(f"no ledger yet at {missing} (a run creates it)")
        raise typer.Exit(1)
    try:
        ledger = open_ledger(target, migrate=False)
    except SQLAlchemyError as exc:
        raise _unreachable(target, exc) from None
    with ledger:
        if ledger.revision() is None:
            console.print(f"the ledger at {ledger.url} has no tables: run `callerid db upgrade`")
            raise typer.Exit(1)
        with ledger.unit_of_work() as uow:
            accounts = [account] if account else uow.numbers.accounts()
            table = Table("account", *(s.value for s in NumberStatus), "total")
            for name in accounts:
                counts = uow.numbers.counts_by_status(name)
                table.add_row(
                    name, *(str(counts[s]) for s in NumberStatus), str(sum(counts.values()))
                )
            runs = uow.runs.latest(account, limit=5)
            console.print(f"ledger: {ledger.url}")
            console.print(table if accounts else "no numbers yet")
            for run in runs:
                end = (
                    run.finished_at.isoformat(timespec="seconds")
                    if run.finished_at
                    else "not finished"
                )
                counts_text = ", ".join(f"{k}={v}" for k, v in sorted(run.counts.items()))
                console.print(
                    f"run {run.id} ({run.account}) {run.started_at.isoformat(timespec='seconds')}"
                    f" -> {end} {counts_text}"
                )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(db_app, name="db")
    app.command("status")(status)
