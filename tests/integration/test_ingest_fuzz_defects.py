"""Ingest defects found by fuzzing (issue 11), each as the file or option that showed it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callerid.cli import app
from callerid.ingest import (
    IngestInputError,
    IngestOptionError,
    RejectReason,
    ingest_csv,
    write_reports,
)
from callerid.pipeline.options import RunPaths
from callerid.pipeline.report import write_run_reports


def write(tmp_path: Path, data: str | bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("encoding", ["rot13", "base64", "hex", "zlib", "bz2", "uu", "quopri"])
def test_only_text_encodings_are_accepted(tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path, "phone\n+14155552671\n")
    with pytest.raises(IngestOptionError, match=f"'{encoding}' is not a text encoding"):
        ingest_csv(path, encoding=encoding)
    result = CliRunner().invoke(app, ["check", str(path), "--encoding", encoding])
    assert result.exit_code == 2
    assert "is not a text encoding" in result.output


def test_a_lone_surrogate_from_unicode_escape_reaches_every_report(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,alias\n+14155552671,a\\ud800b\n\\ud800,x\n")
    result = ingest_csv(path, encoding="unicode_escape")
    assert [row.alias for row in result.accepted] == ["a\\ud800b"]  # as the file wrote it
    assert [row.raw for row in result.rejected] == ["\\ud800"]
    accepted, rejects = write_reports(result, tmp_path / "out")
    assert read_rows(accepted)[0]["alias"] == "a\\ud800b"
    assert read_rows(rejects)[0]["phone"] == "\\ud800"
    paths = RunPaths(tmp_path / "run")
    write_run_reports(paths, result, {})
    assert [row["raw"] for row in read_rows(paths.results_csv)] == ["+14155552671", "\\ud800"]


def test_a_cell_over_the_csv_field_limit_stays_in_its_row(tmp_path: Path) -> None:
    huge = "x" * 200_000
    text = (
        "phone,alias,notes\n"
        f"+14155552671,one,{huge}\n"
        f"+14155552672,{huge},two\n"
        f"+1415555{'2' * 200_000},three,\n"
        "+14155552674,four,\n"
    )
    result = ingest_csv(write(tmp_path, text))
    assert [row.line for row in result.accepted] == [2, 5]
    assert result.accepted[0].extra["notes"] == huge  # carried whole
    reasons = {row.line: (row.reason, row.message) for row in result.rejected}
    assert reasons[3] == (RejectReason.BAD_ALIAS, "alias has 200000 characters; at most 64")
    assert reasons[4][0] == RejectReason.TOO_LONG
    accepted, _ = write_reports(result, tmp_path / "out")
    assert read_rows(accepted)[0]["notes"] == huge


def test_a_quote_never_closed_is_named_in_a_small_file_too(tmp_path: Path) -> None:
    """With the field limit raised, the csv module would quietly end a quoted cell still open
    at the end of the file and lose the rows after it into that cell."""
    text = 'phone,alias\n+14155552671,"open\n+14155552672,x\n+14155552673,y\n'
    with pytest.raises(IngestInputError, match=r"starting on line 2 .*never closed"):
        ingest_csv(write(tmp_path, text))
    closed = 'phone,alias\n+14155552671,x\n+14155552672,"two\nlines"\n'
    assert ingest_csv(write(tmp_path, closed)).data_rows == 2


def test_a_utf8_file_with_many_nuls_is_not_read_as_utf16(tmp_path: Path) -> None:
    text = "phone,note\n+14155552671,Zoë\n+14155552672," + "\0" * 3001 + "\n"
    data = text.encode("utf-8")
    assert len(data) % 2 == 0 and data[:4096].count(0) >= 4096 // 4  # UTF-16 would decode it
    result = ingest_csv(write(tmp_path, data))
    assert result.encoding == "utf-8"
    assert [row.e164 for row in result.accepted] == ["+14155552671", "+14155552672"]
    assert result.accepted[0].extra == {"note": "Zoë"}
    # Real UTF-16 without a BOM is still recognised, mostly-ASCII or not.
    for sample in ("phone,alias\n+14155552671,Zoë\n", "phone,alias\n+74951234567,Иван Петров\n"):
        for codec in ("utf-16-le", "utf-16-be"):
            utf16 = ingest_csv(write(tmp_path, sample.encode(codec)))
            assert (utf16.encoding, len(utf16.accepted)) == (codec, 1)
            assert utf16.accepted[0].alias == sample.split(",")[-1].strip()


def test_delimiter_ties_go_to_the_one_that_keeps_the_columns(tmp_path: Path) -> None:
    text = (
        "phone;Name, first\n+14155552671;Lovelace, Ada\n+14155552672;Hopper\n+14155552673;Turing\n"
    )
    result = ingest_csv(write(tmp_path, text))
    assert result.delimiter == ";"
    assert len(result.accepted) == 3
    assert result.accepted[0].extra == {"Name, first": "Lovelace, Ada"}
    # The mirror image stays with the comma, and so does a comma file with a `;` in a cell.
    mirror = "phone,Name; first\n+14155552671,Lovelace; Ada\n+14155552672,Hopper\n"
    assert ingest_csv(write(tmp_path, mirror)).delimiter == ","
    quoted = 'phone,"notes; more"\n+14155552671,"a;b"\n'
    assert ingest_csv(write(tmp_path, quoted)).delimiter == ","


def test_an_extra_cell_never_overwrites_a_column_of_the_same_name(tmp_path: Path) -> None:
    text = "phone,column_3\n+14155552671,KEEP_ME,extra\nnot a number,KEEP_TOO,more,most\n"
    result = ingest_csv(write(tmp_path, text))
    assert result.accepted[0].extra == {"column_3": "KEEP_ME", "column_3_2": "extra"}
    assert result.rejected[0].extra == {
        "column_3": "KEEP_TOO",
        "column_3_2": "more",
        "column_4": "most",
    }
    assert result.extra_columns == ["column_3", "column_3_2", "column_4"]
    accepted, rejects = write_reports(result, tmp_path / "out")
    row = read_rows(accepted)[0]
    assert (row["column_3"], row["column_3_2"]) == ("KEEP_ME", "extra")
    row = read_rows(rejects)[0]
    assert (row["column_3"], row["column_3_2"], row["column_4"]) == ("KEEP_TOO", "more", "most")


def test_tabs_between_digit_groups_are_spaces(tmp_path: Path) -> None:
    text = 'phone,country\n"415\t555\t2671",\n"+54\t9\t11\t2345-6291",\n"+1\t415\t555\t2672",\n'
    result = ingest_csv(write(tmp_path, text))
    assert [row.e164 for row in result.accepted] == [
        "+14155552671",
        "+5491123456291",
        "+14155552672",
    ]
    assert not result.rejected
