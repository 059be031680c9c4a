"""`callerid check`: the ingest alone from a terminal, with its reports and exit status."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from callerid.cli import app

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample.csv"


def test_check_writes_both_reports_and_summarises(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["check", str(SAMPLE), "--out", str(out), "--channel", "sms"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "56 rows read" in result.output
    assert "45 accepted, 11 rejected" in result.output
    assert "rejected duplicate: 2" in result.output
    assert "warning line 45 (fixed_line_sms)" in result.output
    with (out / "accepted.csv").open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 45
    with (out / "rejects.csv").open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 11


def test_check_exits_non_zero_only_for_an_unusable_file(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_rows = tmp_path / "bad.csv"
    bad_rows.write_text("phone\nnot a number\n", encoding="utf-8")
    every_row_rejected = runner.invoke(app, ["check", str(bad_rows), "--out", str(tmp_path)])
    assert every_row_rejected.exit_code == 0
    assert "rejected not_a_number: 1" in every_row_rejected.output

    no_phone = tmp_path / "people.csv"
    no_phone.write_text("name,email\nAda,ada@example.com\n", encoding="utf-8")
    result = runner.invoke(app, ["check", str(no_phone), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "columns found: 'name', 'email'" in result.output
    assert not (tmp_path / "x").exists()

    missing = runner.invoke(app, ["check", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2
    assert "file not found" in missing.output


def test_check_options_reach_the_ingest(tmp_path: Path) -> None:
    path = tmp_path / "de.csv"
    path.write_bytes("Telefon;Name\n030 901820;Zoë\n".encode("cp1252"))
    runner = CliRunner()
    args = ["check", str(path), "--default-region", "DE", "--out", str(tmp_path / "o")]
    detected = runner.invoke(app, args)
    assert detected.exit_code == 2  # `Telefon` is no phone header we know
    path.write_bytes("phone;Name\n030 901820;Zoë\n".encode("cp1252"))
    result = runner.invoke(app, [*args, "--channel", "call"])
    assert result.exit_code == 0, result.output
    assert "read as cp1252" in result.output
    accepted = (tmp_path / "o" / "accepted.csv").read_text(encoding="utf-8")
    assert "+4930901820" in accepted and "Zoë" in accepted and ",call," in accepted
    explicit = runner.invoke(app, [*args, "--encoding", "cp1252"])
    assert explicit.exit_code == 0 and "read as" not in explicit.output
    bad_option = runner.invoke(app, [*args, "--default-region", "XX"])
    assert bad_option.exit_code == 2 and "default region 'XX'" in bad_option.output
