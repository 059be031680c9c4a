"""An input with owners and channels (issue 12) and reports safe to open in a spreadsheet
(issue 11), through `ingest_csv`, `callerid check` and the run's results.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from callerid.cli import app
from callerid.ingest import Channel, RejectReason, WarningKind, ingest_csv, write_reports
from callerid.pipeline.options import RunPaths
from callerid.pipeline.report import write_run_reports

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample.csv"
LANDLINE, MOBILE, EITHER = "+44 20 7946 0958", "+44 7400 123456", "+1 415 555 2671"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_owner_column_by_synonym_with_a_default(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    for header in ("owner", "Contact", "E-mail", "notify"):
        path.write_text(
            f"phone,{header}\n"
            f"{LANDLINE},Ada <Ada@Example.com>\n"
            f"{MOBILE},\n"
            f"{EITHER},not-an-address\n"
            "+1 415 555 0100,a@example.com; b@example.com\n",
            encoding="utf-8",
        )
        result = ingest_csv(path, default_owner="desk@example.com")
        assert [row.owner for row in result.accepted] == ["Ada@example.com", "desk@example.com"]
        assert [(row.line, row.reason, row.owner) for row in result.rejected] == [
            (4, RejectReason.BAD_OWNER, "not-an-address"),
            (5, RejectReason.BAD_OWNER, "a@example.com; b@example.com"),
        ]
        assert result.columns["owner"] == header
    without = ingest_csv(path)
    assert [row.owner for row in without.accepted] == ["Ada@example.com", None]
    accepted, rejects = write_reports(result, tmp_path / "out")
    assert [row["owner"] for row in read_rows(accepted)] == ["Ada@example.com", "desk@example.com"]
    assert [row["notify"] for row in read_rows(rejects)] == [
        "not-an-address",
        "a@example.com; b@example.com",
    ]


def test_a_duplicate_with_another_owner_says_so(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(f"phone,owner\n{MOBILE},a@example.com\n{MOBILE},b@example.com\n")
    result = ingest_csv(path)
    assert "owner 'a@example.com' there" in result.rejected[0].message.replace(
        "'b@example.com' here, ", ""
    )
    assert result.warnings[0].kind == WarningKind.CONFLICTING_DUPLICATE


def test_channel_auto_by_number_type_and_the_row_wins(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "phone,channel\n"
        f"{LANDLINE},\n"
        f"{MOBILE},\n"
        f"{EITHER},\n"
        f"+49 30 901820,auto\n"
        f"+33 1 42 68 53 01,sms\n"
        f"+44 7400 123457,call\n",
        encoding="utf-8",
    )
    result = ingest_csv(path)  # auto is the default
    assert [row.channel for row in result.accepted] == [
        Channel.CALL,
        Channel.SMS,
        Channel.SMS,
        Channel.CALL,
        Channel.SMS,  # the row's own, a fixed line: warned
        Channel.CALL,
    ]
    assert [(w.line, w.kind) for w in result.warnings] == [(6, WarningKind.FIXED_LINE_SMS)]
    as_sms = ingest_csv(path, default_channel="sms")
    assert [row.channel for row in as_sms.accepted][:3] == [Channel.SMS] * 3  # row 5: auto
    as_call = ingest_csv(path, default_channel="call")
    assert [row.channel for row in as_call.accepted][:5] == [
        Channel.CALL,
        Channel.CALL,
        Channel.CALL,
        Channel.CALL,  # auto in the row: by type
        Channel.SMS,
    ]


def test_the_sample_by_auto(tmp_path: Path) -> None:
    result = ingest_csv(SAMPLE)
    assert not [w for w in result.warnings if w.kind == WarningKind.FIXED_LINE_SMS]
    fixed = [row for row in result.accepted if str(row.number_type) == "fixed_line"]
    assert fixed and all(row.channel is Channel.CALL for row in fixed)


INJECTION = (
    "phone,alias,owner,notes\n"
    '+14155550123,=HYPERLINK("http://x.example"),ada@example.com,@SUM(A1)\n'
    "+cmd|' /C calc'!A0,evil,,-2+3+cmd|' /C calc'!A0\n"
    "+14155550124,plain,,+1 415 555 0124\n"
)


def test_formulas_are_neutralised_in_every_report(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(INJECTION, encoding="utf-8")
    result = ingest_csv(path)
    assert result.accepted[0].alias == '=HYPERLINK("http://x.example")'  # data stays data
    accepted, rejects = write_reports(result, tmp_path / "out")
    rows = read_rows(accepted)
    assert (rows[0]["alias"], rows[0]["notes"]) == ('\'=HYPERLINK("http://x.example")', "'@SUM(A1)")
    assert (rows[0]["e164"], rows[0]["raw"]) == ("+14155550123", "+14155550123")
    assert rows[1]["notes"] == "+1 415 555 0124"
    reject = read_rows(rejects)[0]
    assert reject["phone"] == "'+cmd|' /C calc'!A0"
    assert reject["notes"] == "'-2+3+cmd|' /C calc'!A0"
    # The rejects file goes back in: the guard comes off the phone cell again.
    again = ingest_csv(rejects)
    assert again.rejected[0].raw == "'+cmd|' /C calc'!A0"
    assert again.rejected[0].reason == RejectReason.NOT_A_NUMBER
    paths = RunPaths(tmp_path / "run")
    write_run_reports(paths, result, {})
    results = read_rows(paths.results_csv)
    assert [row["raw"] for row in results] == [
        "+14155550123",
        "'+cmd|' /C calc'!A0",
        "+14155550124",
    ]
    assert results[0]["alias"] == '\'=HYPERLINK("http://x.example")'
    assert read_rows(paths.rejects_csv)[0]["raw"] == "'+cmd|' /C calc'!A0"


def test_check_reads_spreadsheet_options_and_owner(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(f"phone\n{LANDLINE}\n{MOBILE}\n", encoding="utf-8")
    out = tmp_path / "o"
    runner = CliRunner()
    result = runner.invoke(
        app, ["check", str(path), "--owner", "ops@example.com", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = read_rows(out / "accepted.csv")
    assert [(r["channel"], r["owner"]) for r in rows] == [
        ("call", "ops@example.com"),
        ("sms", "ops@example.com"),
    ]
    bad = runner.invoke(app, ["check", str(path), "--owner", "ops", "--out", str(out)])
    assert bad.exit_code == 2 and "default owner" in bad.output
    sheet = runner.invoke(app, ["check", str(path), "--sheet", "Main", "--out", str(out)])
    assert sheet.exit_code == 2 and "is for spreadsheets" in sheet.output
