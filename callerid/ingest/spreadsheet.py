"""A spreadsheet's sheet to the same records a CSV gives, each with the row number a person
sees in the spreadsheet (the header's row is not always 1: a sheet may start lower down).

python-calamine reads `.xlsx`/`.xlsm`, `.xlsb`, `.xls` and `.ods` (the engine pandas uses for
them) and hands back typed cells. It is used directly, not through `pandas.read_excel`: pandas
turns whole floats into ints on the way, and a number that lost digits
(1.2345678901234568E+19) would arrive as a made-up 20-digit integer that no check can tell apart.

A numeric cell becomes its digits when it holds a whole number a double stores exactly
(14155550123.0, typed or shown as 1.4155550123E+10); otherwise it is written as Python writes
the float (`1.2345678901234568E+19`), which the cleaning step rejects as a float that lost
digits, exactly as it does for the same text in a CSV.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callerid.ingest.models import IngestInputError, IngestOptionError
from callerid.ingest.reader import Table

if TYPE_CHECKING:
    import python_calamine

_EXACT = 2**53  # every whole number below this is a double exactly


def read_sheet(data: bytes, kind: str, sheet: str | None, *, path: str = "") -> tuple[Table, str]:
    """(the sheet's records, its name): the first visible worksheet, or the one named."""
    import python_calamine as calamine  # here: a CSV run never needs it

    try:
        book = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except calamine.PasswordError:
        raise IngestInputError(
            "the spreadsheet is password-protected; save a copy without a password", path=path
        ) from None
    except calamine.CalamineError as exc:
        raise IngestInputError(f"cannot read the {kind} spreadsheet ({exc})", path=path) from None
    name = _pick_sheet(book, sheet, path=path)
    try:
        rows = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except calamine.CalamineError as exc:
        raise IngestInputError(f"cannot read sheet {name!r} ({exc})", path=path) from None
    return _table(rows, name, path=path), name


def _pick_sheet(book: python_calamine.CalamineWorkbook, sheet: str | None, *, path: str) -> str:
    import python_calamine as calamine

    names: list[str] = list(book.sheet_names)
    if sheet is None:
        visible = [
            meta.name
            for meta in book.sheets_metadata
            if meta.visible == calamine.SheetVisibleEnum.Visible
            and meta.typ == calamine.SheetTypeEnum.WorkSheet
        ]
        if visible or names:
            return (visible or names)[0]
        raise IngestInputError("the workbook has no sheets", path=path)
    if sheet in names:
        return sheet
    folded = [name for name in names if name.casefold() == sheet.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise IngestOptionError(
        f"no sheet named {sheet!r}; the sheets are {', '.join(map(repr, names))}", path=path
    )


def _table(rows: Sequence[Sequence[object]], name: str, *, path: str) -> Table:
    # Rows start at the sheet's row 1 and column A (skip_empty_area=False). Columns empty in
    # every row are dropped: those left of the table, and those right of it (a stray format
    # can widen the used range); they hold nothing to lose.
    texts = [[_text(value) for value in row] for row in rows]
    end = max((_last_filled(cells) for cells in texts), default=0)
    start = min((_first_filled(cells) for cells in texts), default=0)
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    blank = 0
    for number, row in enumerate(texts, start=1):
        cells = row[start:end]
        if not "".join(cells).strip():
            blank += 1
        elif header is None:
            header = cells
        else:
            records.append((number, cells))
    if header is None:
        raise IngestInputError(f"sheet {name!r} is empty: no header row, no rows", path=path)
    return Table(header=header, records=records, blank_lines=blank, delimiter="")


def _first_filled(cells: list[str]) -> int:
    for index, cell in enumerate(cells):
        if cell.strip():
            return index
    return 1 << 30  # an empty row bounds nothing


def _last_filled(cells: list[str]) -> int:
    for index in range(len(cells) - 1, -1, -1):
        if cells[index].strip():
            return index + 1
    return 0


def _text(value: object) -> str:
    """A cell as the text a CSV export would hold (numbers: see the module's docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _EXACT:
            return str(int(value))
        return repr(value).upper()
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)
