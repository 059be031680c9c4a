"""Text to records, each with the line a person sees it on in an editor (the header is line 1).

The stdlib csv reader splits the records rather than `pandas.read_csv`: pandas cannot say on which
line a record started (quoted cells may span lines, blank lines vanish) and it refuses rows with
more cells than the header, and both must survive here. Every cell stays text.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from callerid.ingest.decode import DELIMITERS, detect_delimiter
from callerid.ingest.models import IngestInputError


@dataclass(frozen=True, slots=True)
class Table:
    header: list[str]
    records: list[tuple[int, list[str]]]  # (line the record starts on, cells)
    blank_lines: int  # lines holding nothing but whitespace and delimiters, header excluded
    delimiter: str


def read_table(text: str, *, path: str = "") -> Table:
    header_line = _first_non_blank_line(text)
    if header_line is None:
        raise IngestInputError("the file is empty: no header line, no rows", path=path)
    delimiter = detect_delimiter(header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    blank = 0
    previous_end = 0
    try:
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if _is_blank(cells):
                blank += previous_end - start + 1
            elif header is None:
                header = cells
            else:
                records.append((start, cells))
    except csv.Error as exc:
        # In practice: a quote opened on that line and never closed swallowed the rest.
        raise IngestInputError(
            f"cannot split the record starting on line {previous_end + 1} into cells ({exc}); "
            'look for a quote (") that is never closed',
            path=path,
        ) from None
    if header is None:  # only reachable when the header line was blank for csv, e.g. `""`
        raise IngestInputError("no header line: every line is blank", path=path)
    return Table(header=header, records=records, blank_lines=blank, delimiter=delimiter)


def _is_blank(cells: list[str]) -> bool:
    # `,,,` is how a spreadsheet exports an empty row: as blank as an empty line.
    return not "".join(cells).strip()


def _first_non_blank_line(text: str) -> str | None:
    for line in io.StringIO(text, newline=""):
        if line.strip(_BLANK_CHARS):
            return line
    return None


_BLANK_CHARS = ' \t\r\n\x0b\x0c"' + "".join(DELIMITERS)
