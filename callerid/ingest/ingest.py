"""`ingest_csv`: a user's CSV or spreadsheet to accepted rows, rejects and warnings; every data
row accounted for.

Order of checks for a row (the first failure is the reason): empty number, country cell, the
number itself, channel, alias, subaccount, owner, and last the duplicate check, so that a
duplicate is only ever a copy of a row that was accepted. The channel `auto` (the default) is
resolved from the number's type, which the normaliser has already worked out.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import cache
from operator import itemgetter
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import phonenumbers as pn

from callerid.ingest.columns import ColumnMap, map_columns
from callerid.ingest.decode import check_encoding, decode, read_bytes
from callerid.ingest.fields import (
    check_defaults,
    parse_alias,
    parse_channel,
    parse_country,
    parse_owner,
    parse_subaccount,
    resolve_channel,
)
from callerid.ingest.models import (
    AUTO_CHANNEL,
    AcceptedRow,
    Channel,
    IngestOptionError,
    IngestResult,
    NumberType,
    RejectedRow,
    RejectReason,
    RowWarning,
    WarningKind,
)
from callerid.ingest.normalise import Failure, Normalised
from callerid.ingest.parallel import iter_outcomes, start_helpers
from callerid.ingest.reader import Table, read_table
from callerid.ingest.sniff import sniff_head


class _Cells(NamedTuple):
    """One record's cells by role, as written."""

    raw: str
    country: str
    channel: str
    alias: str
    subaccount: str
    owner: str
    line: int
    extra: dict[str, str]


def ingest_csv(
    path: str | PathLike[str],
    *,
    default_region: str = "US",
    encoding: str | None = None,
    default_channel: str = AUTO_CHANNEL,
    default_subaccount: str | None = None,
    workers: int = 1,
    sheet: str | None = None,
    default_owner: str | None = None,
) -> IngestResult:
    """Read and check a CSV or spreadsheet of numbers. Raises `IngestInputError` only for an
    unusable file, `IngestOptionError` (one too) for an unusable option.

    A spreadsheet (.xlsx, .xlsm, .xlsb, .xls, .ods, told by content) is read from its first
    visible sheet, or from `sheet`; `encoding` does not apply to it. `default_channel` is `sms`,
    `call` or `auto` (fixed lines by call, the rest by SMS). `default_owner` is the email
    address for rows whose owner cell is empty.

    `workers` > 1 normalises big files (20,000 rows and more) in that many processes. They are
    spawned, so a script that asks for them needs the `if __name__ == "__main__":` guard.
    """
    region, channel, subaccount, owner = check_defaults(
        default_region, default_channel, default_subaccount, default_owner
    )
    check_encoding(encoding)  # a bad option is reported before the file is even opened
    file = Path(path)
    with _gc_paused(), start_helpers(workers, file_bytes=_size(file)) as pool:
        table, source = _read(file, encoding, sheet)
        return _ingest(table, source, _Defaults(region, channel, subaccount, owner), workers, pool)


class _Defaults(NamedTuple):
    region: str
    channel: Channel | None  # None: auto
    subaccount: str | None
    owner: str | None


class _Source(NamedTuple):
    path: str
    encoding: str  # or the spreadsheet's format
    sheet: str | None


def _size(file: Path) -> int:
    try:
        return file.stat().st_size
    except OSError:
        return 0  # reading it will say what is wrong


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Build hundreds of thousands of objects without the cycle collector rescanning them all
    (measured: a quarter of the run time at 100k rows). Nothing here makes cycles.

    On the way out the objects still alive (the result's rows, long-lived by construction) go
    straight to the oldest generation (`freeze` then `unfreeze`: two list splices) instead of
    being walked by the young collection that the next allocation would start (0.06 s at 100k
    rows). Young objects of the caller's are promoted with them: their garbage cycles, if any,
    wait for the next full collection. Skipped when the caller froze objects itself (unfreeze
    would thaw them)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def _ingest(
    table: Table,
    source: _Source,
    defaults: _Defaults,
    workers: int,
    pool: ProcessPoolExecutor | None,
) -> IngestResult:
    region = defaults.region
    columns = map_columns(table.header, path=source.path)
    blank_lines, delimiter, count = table.blank_lines, table.delimiter, len(table.records)
    rows: list[_Cells] = []
    countries: list[str | Failure | None] = []
    overflow: dict[str, None] = {}

    def items() -> Iterator[tuple[str, str]]:
        # Rows are split as the normaliser asks for them, so helpers get their first batches
        # while the rest is still being split (measured: they started 0.15 s later otherwise).
        for row in _split_cells(table, columns, overflow):
            rows.append(row)
            country = parse_country(row.country)
            countries.append(country)
            yield row.raw, country if isinstance(country, str) else region

    outcomes = iter_outcomes(items(), count=count, workers=workers, pool=pool)
    builder = _Builder(defaults)
    for i, outcome in enumerate(outcomes):
        builder.add(rows[i], countries[i], outcome)
    if len(rows) != count or len(builder.accepted) + len(builder.rejected) != count:
        raise AssertionError(f"{count} rows read, {len(rows)} split, not all accounted for")
    return IngestResult(
        accepted=builder.accepted,
        rejected=builder.rejected,
        warnings=builder.warnings,
        data_rows=count,
        blank_lines=blank_lines,
        columns=columns.found,
        extra_columns=[name for _, name in columns.extra] + list(overflow),
        encoding=source.encoding,
        delimiter=delimiter,
        sheet=source.sheet,
    )


def _read(file: Path, encoding: str | None, sheet: str | None) -> tuple[Table, _Source]:
    data = read_bytes(file)
    kind = sniff_head(data[:8192], data, path=str(file))
    if kind != "text":
        from callerid.ingest.spreadsheet import read_sheet

        table, name = read_sheet(data, kind, sheet, path=str(file))
        return table, _Source(str(file), kind, name)
    if sheet is not None:
        raise IngestOptionError(
            f"--sheet {sheet!r} is for spreadsheets; this is a text (CSV) file", path=str(file)
        )
    text, used_encoding = decode(data, encoding, path=str(file))
    return read_table(text, path=str(file)), _Source(str(file), used_encoding, None)


def _split_cells(table: Table, columns: ColumnMap, overflow: dict[str, None]) -> Iterator[_Cells]:
    """Cells by role; cells past the header's width are kept as `column_N` (their names added
    to `overflow`; `column_N_2` if the header has a `column_N`), never dropped. The table's
    records are let go of as they are split (they are a third of the peak memory at 100k
    rows)."""
    width = len(columns.headers)
    at = columns.positions
    # A role the file lacks reads the cell at `width`, which is always made an empty one.
    roles = itemgetter(
        at["phone_number"],
        at.get("country", width),
        at.get("channel", width),
        at.get("alias", width),
        at.get("subaccount", width),
        at.get("owner", width),
    )
    extra_at = columns.extra
    surplus_names: list[str] = []  # the name of cell width + k
    records = table.records
    for k, (line, cells) in enumerate(records):
        records[k] = _SPLIT
        if len(cells) > width:
            while len(surplus_names) < len(cells) - width:
                surplus_names.append(_surplus_name(width + len(surplus_names), columns))
            surplus = dict(zip(surplus_names, cells[width:], strict=False))
            overflow.update(dict.fromkeys(surplus))
            cells = [*cells[:width], ""]
            extra = {name: cells[i] for i, name in extra_at}
            extra.update(surplus)
        else:
            cells.extend([""] * (width + 1 - len(cells)))  # the reader's list: ours to pad
            extra = {name: cells[i] for i, name in extra_at}
        raw, country, channel, alias, subaccount, owner = roles(cells)
        yield _Cells(raw, country, channel, alias, subaccount, owner, line, extra)


def _surplus_name(index: int, columns: ColumnMap) -> str:
    """`column_N` for cell index N - 1, unless the header has that name already."""
    name = candidate = f"column_{index + 1}"
    n = 1
    while candidate in columns.headers:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


_SPLIT: tuple[int, list[str]] = (0, [])  # stands in for a record once it is split


class _Builder:
    """Sorts rows into accepted / rejected and collects warnings, remembering first sightings."""

    def __init__(self, defaults: _Defaults) -> None:
        self.default_channel = defaults.channel
        self.default_subaccount = defaults.subaccount
        self.default_owner = defaults.owner
        self.accepted: list[AcceptedRow] = []
        self.rejected: list[RejectedRow] = []
        self.warnings: list[RowWarning] = []
        self.first_by_e164: dict[str, AcceptedRow] = {}
        # A file holds few distinct channel, subaccount and owner cells: each is parsed once.
        self._channels: dict[str, Channel | Failure | None] = {}
        self._subaccounts: dict[str, str | Failure | None] = {}
        self._owners: dict[str, str | Failure | None] = {}

    def add(
        self, row: _Cells, country: str | Failure | None, outcome: Normalised | Failure
    ) -> None:
        if isinstance(outcome, Failure) and outcome.reason == RejectReason.EMPTY:
            return self.reject(row, outcome)
        if isinstance(country, Failure):
            return self.reject(row, country)
        if isinstance(outcome, Failure):
            return self.reject(row, outcome)
        try:  # one lookup when seen (None, auto, is a value here)
            channel = self._channels[row.channel]
        except KeyError:
            channel = self._channels[row.channel] = parse_channel(row.channel, self.default_channel)
        if isinstance(channel, Failure):
            return self.reject(row, channel)
        if channel is None:  # auto: by the number's type, already known
            channel = resolve_channel(None, outcome.number_type)
        alias = parse_alias(row.alias)
        if isinstance(alias, Failure):
            return self.reject(row, alias)
        try:
            subaccount = self._subaccounts[row.subaccount]
        except KeyError:
            subaccount = parse_subaccount(row.subaccount, self.default_subaccount)
            self._subaccounts[row.subaccount] = subaccount
        if isinstance(subaccount, Failure):
            return self.reject(row, subaccount)
        try:
            owner = self._owners[row.owner]
        except KeyError:
            owner = self._owners[row.owner] = parse_owner(row.owner, self.default_owner)
        if isinstance(owner, Failure):
            return self.reject(row, owner)
        accepted = AcceptedRow(  # positional: the order of AcceptedRow's fields
            row.line,
            row.raw,
            outcome.e164,
            outcome.national,
            outcome.region,
            outcome.number_type,
            alias,
            channel,
            subaccount,
            row.extra,
            owner,
        )
        first = self.first_by_e164.setdefault(accepted.e164, accepted)
        if first is not accepted:
            return self.reject_duplicate(row, accepted, first)
        self.accepted.append(accepted)
        self.warn_about(accepted, country, outcome)

    def reject(self, row: _Cells, failure: Failure, duplicate_of: int | None = None) -> None:
        self.rejected.append(
            RejectedRow(
                line=row.line,
                raw=row.raw,
                reason=failure.reason,
                message=failure.message,
                duplicate_of_line=duplicate_of,
                alias=row.alias,
                country=row.country,
                channel=row.channel,
                subaccount=row.subaccount,
                extra=row.extra,
                owner=row.owner,
            )
        )

    def reject_duplicate(self, row: _Cells, this: AcceptedRow, first: AcceptedRow) -> None:
        message = f"same number as line {first.line} ({first.e164}); the first row is kept"
        conflicts = [
            f"{name} {_shown(getattr(this, name))} here, {_shown(getattr(first, name))} there"
            for name in ("alias", "channel", "subaccount", "owner")
            if getattr(this, name) != getattr(first, name)
        ]
        if conflicts:
            message += "; differs: " + "; ".join(conflicts)
            self.warn(this, WarningKind.CONFLICTING_DUPLICATE, message)
        self.reject(row, Failure(RejectReason.DUPLICATE, message), duplicate_of=first.line)

    def warn_about(self, row: AcceptedRow, country: str | None, outcome: Normalised) -> None:
        if row.number_type == NumberType.FIXED_LINE and row.channel == Channel.SMS:
            self.warn(
                row,
                WarningKind.FIXED_LINE_SMS,
                f"{row.e164} is a fixed line and cannot receive the SMS; set channel to call",
            )
        if outcome.assumed_plus:
            self.warn(
                row,
                WarningKind.ASSUMED_PLUS,
                f"written without +; read as international {row.e164} ({row.region}): check it",
            )
        if country is not None and _calling_code(country) != outcome.country_code:
            self.warn(
                row,
                WarningKind.COUNTRY_MISMATCH,
                f"country column says {country} but {row.e164} is a {row.region} number",
            )

    def warn(self, row: AcceptedRow, kind: WarningKind, message: str) -> None:
        self.warnings.append(RowWarning(line=row.line, raw=row.raw, kind=kind, message=message))


@cache
def _calling_code(region: str) -> int:
    return int(pn.country_code_for_region(region))


def _shown(value: object) -> str:
    return "(none)" if value is None else repr(str(value))
