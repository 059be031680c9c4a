"""Text to records, each with the line a person sees it on in an editor (the header is line 1).

The stdlib csv reader splits the records rather than `pandas.read_csv`: pandas cannot say on which
line a record started (quoted cells may span lines, blank lines vanish) and it refuses rows with
more cells than the header, and both must survive here. Every cell stays text.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass

from callerid.ingest.columns import SYNONYMS, canonical
from callerid.ingest.decode import DELIMITERS, detect_delimiter
from callerid.ingest.models import IngestInputError

# The csv module refuses a cell over 131,072 characters by default; a cell that long is a row
# to reject (or carry) on its own, never a reason to refuse the file. (The limit is process-wide;
# it is only ever raised here.)
_FIELD_LIMIT = 2**31 - 1
# Records read to choose between delimiters that all split the header.
_DELIMITER_SAMPLE = 50
_PHONE_HEADERS = frozenset(SYNONYMS["phone_number"])


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
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    delimiter = choose_delimiter(text, header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    blank = 0
    previous_end = 0
    last_start = last_end = 0  # the lines of the last non-blank record (the header too)
    try:
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if _is_blank(cells):
                blank += previous_end - start + 1
            elif header is None:
                header, last_start, last_end = cells, start, previous_end
            else:
                records.append((start, cells))
                last_start, last_end = start, previous_end
    except csv.Error as exc:
        # In practice: a quote opened on that line and never closed swallowed the rest.
        raise IngestInputError(
            f"cannot split the record starting on line {previous_end + 1} into cells ({exc}); "
            'look for a quote (") that is never closed',
            path=path,
        ) from None
    if header is None:  # only reachable when the header line was blank for csv, e.g. `""`
        raise IngestInputError("no header line: every line is blank", path=path)
    if last_end == previous_end > last_start and _quote_left_open(text, last_start):
        # The csv module ends a quoted cell that is still open at the end of the file quietly,
        # with the rest of the file inside it: those rows would vanish into one cell.
        raise IngestInputError(
            f"the record starting on line {last_start} runs to the end of the file "
            f'(line {previous_end}); look for a quote (") that is never closed',
            path=path,
        )
    return Table(header=header, records=records, blank_lines=blank, delimiter=delimiter)


def _quote_left_open(text: str, line: int) -> bool:
    """An odd number of quotes from `line` to the end: one was opened and never closed."""
    lines = io.StringIO(text, newline="").readlines()
    return sum(part.count('"') for part in lines[line - 1 :]) % 2 == 1


def choose_delimiter(text: str, header_line: str) -> str:
    """The delimiter that splits the header; when several do (`phone;Name, first`), the one
    that gives the header's column count on most of the first records, then the one whose
    header names a phone column, then the one with more columns, then the earlier candidate."""
    present = [c for c in DELIMITERS if c in header_line]
    if len(present) < 2:
        return detect_delimiter(header_line)
    scores = []
    for index, candidate in enumerate(DELIMITERS):
        if candidate not in present:
            continue
        records = csv.reader(io.StringIO(text, newline=""), delimiter=candidate, strict=False)
        non_blank = (cells for cells in records if not _is_blank(cells))
        header = next(non_blank, [])
        sample = itertools.islice(non_blank, _DELIMITER_SAMPLE)
        same_width = sum(len(cells) == len(header) for cells in sample)
        phone = any(canonical(cell) in _PHONE_HEADERS for cell in header)
        scores.append((len(header) > 1, same_width, phone, len(header), -index, candidate))
    return max(scores)[-1]


def _is_blank(cells: list[str]) -> bool:
    # `,,,` is how a spreadsheet exports an empty row: as blank as an empty line.
    return not "".join(cells).strip()


def _first_non_blank_line(text: str) -> str | None:
    for line in io.StringIO(text, newline=""):
        if line.strip(_BLANK_CHARS):
            return line
    return None


_BLANK_CHARS = ' \t\r\n\x0b\x0c"' + "".join(DELIMITERS)
