"""`callerid db upgrade|current` and `callerid status`.

The database is `--url`, else CALLERID_DATABASE_URL, else the SQLite file under the output folder.
SQLite ledgers migrate themselves when opened; `db upgrade` is for servers (PostgreSQL) that
migrate as a deploy step. Passwords in URLs are masked in everything printed. Exit status: 0 done,
1 no ledger there yet (status), 2 the database cannot be reached.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from callerid.cli.terminal import console

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.exc import SQLAlchemyError

db_app = typer.Typer(
    rich_markup_mode=None, no_args_is_help=True, help="The ledger's database: schema migrations."
)

DatabaseUrl = Annotated[
    str | None, typer.Option("--url", help="Ledger database URL (default: CALLERID_DATABASE_URL).")
]


def _url(given: str | None) -> str:
    from callerid.settings import load_settings

    return given or load_settings().resolved_database_url()


def _unreachable(url: str, exc: SQLAlchemyError) -> typer.Exit:
    from sqlalchemy.engine import make_url

    masked = make_url(url).render_as_string(hide_password=True)
    console.print(f"[red]cannot use the ledger at {masked}: {type(exc).__name__}[/red]")
    return typer.Exit(2)


@db_app.command("upgrade")
def upgrade(url: DatabaseUrl = None) -> None:
    """Create or migrate the ledger's tables to the newest schema."""
    from sqlalchemy.exc import SQLAlchemyError

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
    from sqlalchemy.exc import SQLAlchemyError

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
    from sqlalchemy.exc import SQLAlchemyError

    from callerid.ledger import open_ledger

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
            counts = {name: uow.numbers.counts_by_status(name) for name in accounts}
            runs = uow.runs.latest(account, limit=5)
            console.print(f"ledger: {ledger.url}", soft_wrap=True)
            if not accounts:
                console.print("no numbers yet")
            for table in _count_tables(counts, console.width):
                console.print(table)
            if runs:
                _print_runs(runs)


def _count_tables(counts: Mapping[str, Mapping[Any, int]], width: int) -> Iterator[Table]:
    """Numbers per status: a row per status, a column per account (as many accounts side by
    side as the terminal's width holds, so no header is ever cut)."""
    from rich.table import Column, Table

    from callerid.ledger import NumberStatus

    names = list(counts)
    widest = max((len(name) for name in names), default=0)
    per_table = max(1, (width - 22) // (widest + 3))
    for start in range(0, len(names), per_table):
        group = names[start : start + per_table]
        table = Table("status", *(Column(name, justify="right", no_wrap=True) for name in group))
        for status in NumberStatus:
            table.add_row(status.value, *(str(counts[name][status]) for name in group))
        table.add_row("[bold]total", *(f"[bold]{sum(counts[name].values())}" for name in group))
        yield table


def _print_runs(runs: Sequence[Any]) -> None:
    """The latest runs, two short lines each: the run id's first 8 characters (what `callerid
    runs` starts with), account, start and end; then its counts (wrapped between counts)."""
    console.print("latest runs:")
    for run in runs:
        end = f"{run.finished_at:%H:%M:%S}" if run.finished_at else "[yellow]not finished[/]"
        console.print(f"  {run.id[:8]}  {run.account}  {run.started_at:%Y-%m-%d %H:%M:%S} -> {end}")
        counts = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items()))
        console.print(f"    {counts or 'no counts yet'}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(db_app, name="db")
    app.command("status")(status)
