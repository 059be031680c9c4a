"""Spreadsheets read directly (issue 11): .xlsx/.xlsm written with openpyxl, .ods with odfpy; the
row numbers are the ones a person sees, numeric cells read as their digits, a float that lost
digits rejected as in a CSV; content decides the format, and other files are named."""

from __future__ import annotations

import gzip
import io
import re
import struct
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P
from typer.testing import CliRunner

from callerid.cli import app
from callerid.ingest import (
    IngestInputError,
    IngestOptionError,
    IngestResult,
    ingest_csv,
    sniff_input,
    summary_lines,
    write_reports,
)

Cell = str | int | float | None


def xlsx(path: Path, sheets: dict[str, dict[str, Cell]], *, hidden: Sequence[str] = ()) -> Path:
    """A workbook with cells placed by reference (`B3`), sheets in the order given."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, cells in sheets.items():
        sheet = book.create_sheet(name)
        for ref, value in cells.items():
            sheet[ref] = value
        if name in hidden:
            sheet.sheet_state = "hidden"
    book.save(path)
    return path


def ods(path: Path, rows: list[list[Cell]], *, name: str = "Numbers") -> Path:
    doc = OpenDocumentSpreadsheet()
    table = Table(name=name)
    for values in rows:
        row = TableRow()
        for value in values:
            if value is None:
                cell = TableCell()
            elif isinstance(value, int | float):
                cell = TableCell(valuetype="float", value=value)
                cell.addElement(P(text=str(value)))
            else:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=value))
            row.addElement(cell)
        table.addElement(row)
    doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


def by_line(result: IngestResult) -> dict[int, str]:
    """line -> e164 for accepted rows, the reason for rejected ones."""
    rows = {row.line: row.e164 for row in result.accepted}
    rows.update({row.line: str(row.reason) for row in result.rejected})
    return rows


NUMBERS = {
    # A title-less sheet whose header sits on row 3, column B, as people lay them out.
    "B3": "phone",
    "C3": "name",
    "B4": 14155550123,  # an integer cell
    "C4": "int",
    "B5": 14155550124.0,  # a float cell that is a whole number
    "B6": 1.4155550125e10,  # scientific, every digit kept
    "B7": "+44 20 7946 0958",  # text
    # row 8 left empty
    "B9": "4.15556E+09",  # text that lost digits (typed into a text cell)
    "B10": 1.2345678901234567e19,  # a number a double cannot hold exactly: digits lost
    "B11": None,
    "C11": "no number",
    "B12": 4155550126,
    "D12": "past the header",
}


def test_an_xlsx_is_read_with_the_row_numbers_a_person_sees(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "team.xlsx", {"Numbers": NUMBERS})
    result = ingest_csv(path)
    assert by_line(result) == {
        4: "+14155550123",
        5: "+14155550124",
        6: "+14155550125",
        7: "+442079460958",
        9: "damaged_number",
        10: "damaged_number",
        11: "empty",
        12: "+14155550126",
    }
    assert result.data_rows == 8
    assert (result.encoding, result.sheet, result.delimiter) == ("xlsx", "Numbers", "")
    assert result.blank_lines == 3  # rows 1, 2 and 8
    damaged = {row.line: row.message for row in result.rejected}
    assert damaged[9].startswith("4.15556E+09 is a spreadsheet float that lost digits")
    assert "spreadsheet float that lost digits" in damaged[10]
    # A cell beyond the header's columns is kept, like one past a CSV header.
    last = next(row for row in result.accepted if row.line == 12)
    assert last.extra == {"column_3": "past the header"}
    assert summary_lines(result)[0].startswith("8 rows read (xlsx sheet 'Numbers', 3 blank rows")


def test_sheets_first_visible_by_default_or_by_name(tmp_path: Path) -> None:
    path = xlsx(
        tmp_path / "book.xlsx",
        {
            "Notes": {"A1": "phone", "A2": "+14155550100"},
            "Main": {"A1": "phone", "A2": "+14155550101"},
            "Other Team": {"A1": "Telephone", "A2": "+14155550102", "A3": "+14155550103"},
        },
        hidden=["Notes"],
    )
    assert [row.e164 for row in ingest_csv(path).accepted] == ["+14155550101"]
    other = ingest_csv(path, sheet="Other Team")
    assert [row.e164 for row in other.accepted] == ["+14155550102", "+14155550103"]
    assert other.sheet == "Other Team"
    assert ingest_csv(path, sheet="other team").sheet == "Other Team"
    assert ingest_csv(path, sheet="Notes").accepted[0].e164 == "+14155550100"
    with pytest.raises(IngestOptionError, match="no sheet named 'Nope'; the sheets are 'Notes'"):
        ingest_csv(path, sheet="Nope")
    csv_path = tmp_path / "plain.csv"
    csv_path.write_text("phone\n+14155550100\n", encoding="utf-8")
    with pytest.raises(IngestOptionError, match="is for spreadsheets; this is a text"):
        ingest_csv(csv_path, sheet="Main")


def test_content_decides_not_the_name(tmp_path: Path) -> None:
    """An .xlsm (same layout as .xlsx), and a workbook saved under a .csv name."""
    source = xlsx(tmp_path / "a.xlsx", {"S": {"A1": "phone", "A2": 14155550123}})
    for name in ("macros.xlsm", "export.csv", "noextension"):
        copy = tmp_path / name
        copy.write_bytes(source.read_bytes())
        assert sniff_input(copy) == "xlsx"
        assert [row.e164 for row in ingest_csv(copy).accepted] == ["+14155550123"]


def test_an_ods_is_read_like_any_spreadsheet(tmp_path: Path) -> None:
    path = ods(
        tmp_path / "team.ods",
        [
            ["phone", "alias", "owner"],
            [14155550123, "desk", "ada@example.com"],
            [None, None, None],
            ["+44 20 7946 0958", "London", None],
            [1.4155550124e10, "sci", "bad address"],
        ],
    )
    assert sniff_input(path) == "ods"
    result = ingest_csv(path, default_owner="ops@example.com")
    assert by_line(result) == {
        2: "+14155550123",
        4: "+442079460958",
        5: "bad_owner",
    }
    assert [row.owner for row in result.accepted] == ["ada@example.com", "ops@example.com"]
    assert (result.encoding, result.sheet, result.blank_lines) == ("ods", "Numbers", 1)


def test_reports_of_a_spreadsheet_keep_every_cell(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "team.xlsx", {"Numbers": NUMBERS})
    accepted, rejects = write_reports(ingest_csv(path), tmp_path / "out")
    text = accepted.read_text(encoding="utf-8")
    assert text.splitlines()[0].endswith(",raw,warnings,column_3")  # column A, empty, is gone
    assert "4,+14155550123," in text and ",14155550123," in text
    assert "past the header" in text
    assert "4.15556E+09" in rejects.read_text(encoding="utf-8")


def _ole(entries: list[str]) -> bytes:
    """A compound-file header and one directory sector naming `entries` (enough to sniff)."""
    header = bytearray(512)
    header[:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<H", header, 0x1E, 9)  # 512-byte sectors
    struct.pack_into("<I", header, 0x30, 0)  # the directory starts at sector 0
    sector = bytearray(512)
    for i, name in enumerate(entries[:4]):
        encoded = (name + "\0").encode("utf-16-le")
        sector[i * 128 : i * 128 + len(encoded)] = encoded
        struct.pack_into("<H", sector, i * 128 + 64, len(encoded))
    return bytes(header + sector)


def _zip(names: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as box:
        for name, data in names.items():
            box.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png image"),
        (gzip.compress(b"phone\n+14155550123\n"), "gzip"),
        (_zip({"notes.txt": b"hello"}), "zip archive"),
        (_zip({"word/document.xml": b"<w/>", "[Content_Types].xml": b"<x/>"}), "Word document"),
        (b"PK\x03\x04 not really a zip", "zip archive, damaged"),
        (_ole(["Root Entry", "WordDocument", "1Table"]), "Word document (.doc)"),
        (bytes(range(256)) * 8, "binary data"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" * 20, "executable"),
    ],
)
def test_other_files_are_named(tmp_path: Path, data: bytes, looks_like: str) -> None:
    path = tmp_path / "numbers.csv"
    path.write_bytes(data)
    message = r"this is not a CSV or spreadsheet file \(looks like: " + re.escape(looks_like)
    with pytest.raises(IngestInputError, match=message):
        sniff_input(path)
    with pytest.raises(IngestInputError, match=message) as raised:
        ingest_csv(path)
    assert raised.value.path == str(path)


def test_text_and_old_workbooks_are_recognised(tmp_path: Path) -> None:
    path = tmp_path / "in"
    for data in (
        b"phone\n+14155550123\n",
        "phone;Name\n030 901820;Zo\xeb\n".encode("latin-1"),
        "phone\n+14155550123\n".encode("utf-16"),
        b"phone,alias\n" + bytes(range(256)),  # a header: the rows will say what is wrong
        b"",
    ):
        path.write_bytes(data)
        assert sniff_input(path) == "text", data[:20]
    path.write_bytes(_ole(["Root Entry", "Workbook", "\x05SummaryInformation"]))
    assert sniff_input(path) == "xls"
    with pytest.raises(IngestInputError, match="cannot read the xls spreadsheet"):
        ingest_csv(path)  # the sniff's sketch of a workbook has no sheets in it
    path.write_bytes(_ole(["Root Entry", "EncryptedPackage", "EncryptionInfo"]))
    with pytest.raises(IngestInputError, match="password-protected"):
        sniff_input(path)
    with pytest.raises(IngestInputError, match="file not found"):
        sniff_input(tmp_path / "missing.xlsx")


def test_check_takes_spreadsheets_and_names_other_files(tmp_path: Path) -> None:
    path = xlsx(
        tmp_path / "book.xlsx",
        {
            "Main": {"A1": "phone", "A2": 14155550101},
            "Other Team": {"A1": "tel", "A3": 1.4155550123e10},
        },
    )
    out = tmp_path / "o"
    runner = CliRunner()
    result = runner.invoke(app, ["check", str(path), "--sheet", "Other Team", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 rows read (xlsx sheet 'Other Team', 1 blank rows skipped)" in result.output
    assert "note: the file is not UTF-8" not in result.output
    assert "3,+14155550123" in (out / "accepted.csv").read_text(encoding="utf-8")
    pdf = tmp_path / "numbers.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    refused = runner.invoke(app, ["check", str(pdf), "--out", str(out)])
    assert refused.exit_code == 2
    assert "this is not a CSV or spreadsheet file (looks like: pdf)" in refused.output


CELL = st.one_of(
    st.none(),
    st.sampled_from(["+1 415 555 2671", "+44 20 7946 0958", "4.15556E+09", "x", " ", "@x"]),
    st.integers(min_value=-(10**16), max_value=10**16),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6).filter(lambda t: not any("\x00" <= c < " " for c in t)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=st.integers(min_value=1, max_value=4),
    left=st.integers(min_value=0, max_value=3),
    rows=st.lists(st.lists(CELL, min_size=1, max_size=4), max_size=12),
)
@example(top=1, left=0, rows=[["=0"]])  # text that looks like a formula
def test_every_row_of_a_sheet_is_accounted_for_on_its_row(
    top: int, left: int, rows: list[list[Cell]]
) -> None:
    """Whatever the cells, every row that holds something below the header is accepted or
    rejected once, under the row number the spreadsheet shows."""
    with tempfile.TemporaryDirectory() as folder:
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.cell(row=top, column=left + 1, value="phone")
        sheet.cell(row=top, column=left + 2, value="alias")
        for i, values in enumerate(rows, start=top + 1):
            for j, value in enumerate(values, start=left + 1):
                cell = sheet.cell(row=i, column=j, value=value)
                if isinstance(value, str) and value.startswith("="):
                    cell.data_type = "s"  # text as typed, not a formula with no cached value
        path = Path(folder) / "p.xlsx"
        book.save(path)
        result = ingest_csv(path)
    expected = [
        i
        for i, values in enumerate(rows, start=top + 1)
        if any(v is not None and (not isinstance(v, str) or v.strip()) for v in values)
    ]
    lines = sorted([*(r.line for r in result.accepted), *(r.line for r in result.rejected)])
    assert lines == expected
    for row in result.accepted:
        assert row.e164.startswith("+") and row.e164[1:].isdigit()


def _biff(kind: int, data: bytes = b"") -> bytes:
    return struct.pack("<HH", kind, len(data)) + data


def _bof(sheet_type: int) -> bytes:
    return _biff(0x0809, struct.pack("<HHHHII", 0x0600, sheet_type, 0x0DBB, 0x07CC, 0, 0x06))


def _workbook_stream(name: str, cells: list[tuple[int, int, str | float]]) -> bytes:
    """BIFF8: globals (BOF, one BOUNDSHEET, EOF), then the sheet (BOF, DIMENSIONS, cells, EOF)."""
    sheet = _bof(0x0010)
    rows, cols = [r for r, _, _ in cells], [c for _, c, _ in cells]
    sheet += _biff(0x0200, struct.pack("<IIHHH", 0, max(rows) + 1, 0, max(cols) + 1, 0))
    for row, col, value in cells:
        if isinstance(value, float):  # NUMBER
            sheet += _biff(0x0203, struct.pack("<HHHd", row, col, 0, value))
        else:  # LABEL, 8-bit characters
            text = value.encode("latin-1")
            sheet += _biff(0x0204, struct.pack("<HHHHB", row, col, 0, len(text), 0) + text)
    sheet += _biff(0x000A)

    def globals_(sheet_at: int) -> bytes:
        encoded = name.encode("latin-1")
        bound = struct.pack("<IBBBB", sheet_at, 0, 0, len(encoded), 0) + encoded
        return _bof(0x0005) + _biff(0x0085, bound) + _biff(0x000A)

    return globals_(len(globals_(0))) + sheet


def xls(path: Path, name: str, cells: list[tuple[int, int, str | float]]) -> Path:
    """A real (if minimal) Excel 97-2003 file: a compound file of 512-byte sectors holding a FAT
    (sector 0), the directory (1) and a 4 KB `Workbook` stream (2-9). No xls writer is installed."""
    stream = _workbook_stream(name, cells).ljust(4096, b"\0")
    header = bytearray(512)
    header[:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<8I", header, 0x28, 0, 1, 1, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE)
    struct.pack_into("<110I", header, 0x48, 0, 0, *([0xFFFFFFFF] * 108))
    fat = [0xFFFFFFFD, 0xFFFFFFFE, *range(3, 10), 0xFFFFFFFE]
    fat_sector = struct.pack("<128I", *fat, *([0xFFFFFFFF] * (128 - len(fat))))

    def entry(entry_name: str, kind: int, child: int, start: int, size: int) -> bytes:
        raw = bytearray(128)
        encoded = (entry_name + "\0").encode("utf-16-le") if entry_name else b""
        raw[: len(encoded)] = encoded
        struct.pack_into("<HBBIII", raw, 64, len(encoded), kind, 1, 0xFFFFFFFF, 0xFFFFFFFF, child)
        struct.pack_into("<III", raw, 116, start, size, 0)
        return bytes(raw)

    directory = entry("Root Entry", 5, 1, 0xFFFFFFFE, 0) + entry("Workbook", 2, 0xFFFFFFFF, 2, 4096)
    directory += entry("", 0, 0xFFFFFFFF, 0, 0) * 2
    path.write_bytes(bytes(header) + fat_sector + directory + stream)
    return path


def test_an_xls_is_read_like_any_spreadsheet(tmp_path: Path) -> None:
    path = xls(
        tmp_path / "old.xls",
        "Phones",
        [
            (1, 1, "phone"),  # B2: the header on row 2
            (1, 2, "alias"),
            (2, 1, 14155550123.0),
            (2, 2, "desk"),
            (4, 1, "+44 20 7946 0958"),  # row 4 left empty
            (5, 1, 1.2345678901234567e19),
        ],
    )
    assert sniff_input(path) == "xls"
    result = ingest_csv(path)
    assert by_line(result) == {3: "+14155550123", 5: "+442079460958", 6: "damaged_number"}
    assert (result.encoding, result.sheet, result.blank_lines) == ("xls", "Phones", 2)
    assert result.accepted[0].alias == "desk"
