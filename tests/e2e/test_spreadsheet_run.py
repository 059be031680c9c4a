"""`callerid run` on spreadsheets made in the test (issue 11) and the channel split of the dry-run
plan (issue 12), on the embedded default: no credentials, the in-process sandbox."""

from __future__ import annotations

import json
import re
from pathlib import Path

import openpyxl
import pytest
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P
from typer.testing import CliRunner

from callerid.cli import app
from tests.e2e.helpers import read_csv

pytestmark = pytest.mark.slow

# (cell, what results.csv says): numeric cells read as digits, a float that lost digits refused.
ROWS: list[tuple[str | int | float | None, str]] = [
    (14155550123, "+14155550123"),
    (1.4155550124e10, "+14155550124"),
    (14155550125.0, "+14155550125"),
    ("+44 7400 123456", "+447400123456"),
    ("4.15556E+09", "rejected"),
    (None, "blank"),
    ("(415) 555-0126", "+14155550126"),
]


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "PLIVO_API_URL", "CALLERID_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLERID_OUTPUT_DIR", str(tmp_path / "out"))
    return tmp_path / "out"


def _xlsx(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Phones"
    sheet.append(["phone", "alias"])
    for i, (cell, _) in enumerate(ROWS):
        if cell is not None:
            sheet.append([cell, f"desk {i}"])
        else:
            sheet.append([])
    book.create_sheet("Other").append(["nothing here"])
    book.save(path)
    return path


def _ods(path: Path) -> Path:
    doc = OpenDocumentSpreadsheet()
    table = Table(name="Phones")
    for values in [("phone", "alias"), *((cell, f"desk {i}") for i, (cell, _) in enumerate(ROWS))]:
        row = TableRow()
        for value in values:
            if values[0] is None:
                cell = TableCell()
            elif isinstance(value, int | float):
                cell = TableCell(valuetype="float", value=value)
                cell.addElement(P(text=str(value)))
            else:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=str(value)))
            row.addElement(cell)
        table.addElement(row)
    doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


def _run_id(output: str) -> str:
    found = re.search(r"run id ([0-9a-f-]{36})", output)
    assert found, output
    return found.group(1)


@pytest.mark.parametrize("make", [_xlsx, _ods], ids=["xlsx", "ods"])
def test_a_spreadsheet_runs_end_to_end(
    prefect_api: str, no_credentials: Path, tmp_path: Path, make: object
) -> None:
    path = make(tmp_path / f"team.{make.__name__[1:]}")  # type: ignore[operator]
    result = CliRunner().invoke(app, ["run", str(path), "--reply-delay", "0.2"])
    assert result.exit_code == 0, result.output
    rows = read_csv(no_credentials / "runs" / _run_id(result.output) / "results.csv")
    expected = {line: e164 for line, (_, e164) in enumerate(ROWS, start=2) if e164 != "blank"}
    assert {int(r["line"]): r["phone_number"] or r["status"] for r in rows} == expected
    assert {r["status"] for r in rows} == {"verified", "rejected"}
    rejected = next(r for r in rows if r["status"] == "rejected")
    assert "lost digits" in rejected["reason"]


def test_the_dry_run_shows_the_channel_split(
    prefect_api: str, no_credentials: Path, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "phone,channel\n"
        "+44 20 7946 0958,\n"  # a London landline: called
        "+49 30 901820,\n"  # a Berlin landline: called
        "+44 7400 123456,\n"  # a mobile: texted
        "+1 415 555 0127,\n"  # North America, fixed line or mobile: texted
        "+44 20 7946 0959,sms\n",  # the row's own channel wins
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "to initiate: 5 (3 by SMS, 2 by voice call)" in result.output
    plan = json.loads(next((no_credentials / "runs").glob("*/plan.json")).read_text())
    assert plan["to_initiate_by_channel"] == {"call": 2, "sms": 3}
    as_sms = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--channel", "sms"])
    assert "to initiate: 5 (5 by SMS, 0 by voice call)" in as_sms.output
