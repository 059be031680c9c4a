"""`callerid check FILE.csv`: the ingest alone, before an import. Sends nothing anywhere.

Writes `accepted.csv` and `rejects.csv` to `--out` and prints a summary. Exit status 0 whatever
the rows hold (rejects are an answer, not a failure); 2 when the file cannot be read at all or an
option is unusable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def check(
    file: Annotated[Path, typer.Argument(help="The CSV of phone numbers to check.")],
    default_region: Annotated[
        str, typer.Option(help="Country (ISO alpha-2) for national numbers without one.")
    ] = "US",
    encoding: Annotated[
        str | None, typer.Option(help="The file's encoding, when it is not detected right.")
    ] = None,
    channel: Annotated[
        str,
        typer.Option(help="Channel for rows without one: sms, call, or auto (fixed lines call)."),
    ] = "auto",
    subaccount: Annotated[
        str | None, typer.Option(help="Subaccount auth id for rows without one.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for accepted.csv and rejects.csv (default: check/ in the output folder)."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes for big files (20,000 rows and more).")
    ] = 1,
    max_warnings: Annotated[int, typer.Option(min=0, help="Warnings to print.")] = 20,
    sheet: Annotated[
        str | None, typer.Option(help="The spreadsheet's sheet to read (default: the first).")
    ] = None,
    owner: Annotated[
        str | None, typer.Option(help="Owner email address for rows without one.")
    ] = None,
) -> None:
    """Check a CSV as an import would read it; write accepted.csv and rejects.csv."""
    from callerid.ingest import IngestInputError, ingest_csv, summary_lines, write_reports
    from callerid.settings import load_settings

    try:
        result = ingest_csv(
            file,
            default_region=default_region,
            encoding=encoding,
            default_channel=channel,
            default_subaccount=subaccount,
            workers=workers,
            sheet=sheet,
            default_owner=owner,
        )
    except IngestInputError as exc:  # a bad option (IngestOptionError) is one too
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    folder = out if out is not None else load_settings().output_dir / "check"
    accepted_path, rejects_path = write_reports(result, folder)
    for line in summary_lines(result, max_warnings=max_warnings):
        typer.echo(line)
    utf = ("utf-8", "utf-8-sig", "utf-16", "utf-32")
    if result.sheet is None and result.encoding not in utf and encoding is None:
        typer.echo(
            f"note: the file is not UTF-8; it was read as {result.encoding}. If names look "
            "wrong in the reports, give the right encoding with --encoding."
        )
    typer.echo(f"wrote {accepted_path} and {rejects_path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command(name="check")(check)
