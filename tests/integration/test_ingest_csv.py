"""`ingest_csv` over real files: encodings, delimiters, line numbers, duplicates, warnings."""

from __future__ import annotations

import codecs
import csv
import gc
import re
from pathlib import Path

import pytest

from callerid.ingest import (
    Channel,
    IngestInputError,
    IngestOptionError,
    IngestResult,
    RejectReason,
    WarningKind,
    ingest_csv,
    parallel,
    write_reports,
)

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample.csv"
SUB = "SASANDBOXSUBACCT0001"


def write(tmp_path: Path, text: str, *, encoding: str = "utf-8", name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def by_line(result: IngestResult) -> dict[int, object]:
    rows: dict[int, object] = {row.line: row for row in result.accepted}
    rows.update({row.line: row for row in result.rejected})
    return rows


def test_the_sample_file(tmp_path: Path) -> None:
    result = ingest_csv(SAMPLE, default_channel="sms")
    assert (result.data_rows, len(result.accepted), len(result.rejected)) == (56, 45, 11)
    assert result.counts_by_reason() == {
        RejectReason.DUPLICATE: 2,
        **dict.fromkeys(
            [
                RejectReason.BAD_ALIAS,
                RejectReason.BAD_CHANNEL,
                RejectReason.BAD_SUBACCOUNT,
                RejectReason.DAMAGED_NUMBER,
                RejectReason.EMPTY,
                RejectReason.HAS_EXTENSION,
                RejectReason.INVALID_COUNTRY,
                RejectReason.NOT_A_NUMBER,
                RejectReason.TOO_SHORT,
            ],
            1,
        ),
    }
    regions = {row.region for row in result.accepted}
    assert {"US", "CA", "GB", "DE", "FR", "IN", "AU", "BR", "JP"} <= regions
    assert sum(row.channel is Channel.CALL for row in result.accepted) >= 2
    assert sum(row.subaccount == SUB for row in result.accepted) == 2
    assert [w.kind for w in result.warnings] == [
        WarningKind.FIXED_LINE_SMS,
        WarningKind.CONFLICTING_DUPLICATE,
    ]


ALL_REASONS = """phone,alias,country,channel,subaccount,owner
,empty,,,,
1+2+3+4+5,unparseable,,,,
4.15556E+09,damaged,,,,
+44 20 7946 0958,bad country,ZZ,,,
call me,words,,,,
555-0123,short,,,,
+1 415 555 26711,long,,,,
+1 555 555 5555,invalid,,,,
+1 415 555 2671 ext 9,extension,,,,
+1 415 555 2671,first,,,,
+1 (415) 555-2671,second,,,,
+1 415 555 0100,channel,,fax,,
+1 415 555 0101,{long_alias},,,,
+1 415 555 0102,sub,,,SA42,
+1 415 555 0103,owner,,,,not an address
"""


def test_every_reject_reason_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, ALL_REASONS.format(long_alias="y" * 65))
    result = ingest_csv(path)
    reasons = {row.alias if row.alias else row.raw: row.reason for row in result.rejected}
    assert set(reasons.values()) == set(RejectReason)
    assert [row.alias for row in result.accepted] == ["first"]
    duplicate = next(r for r in result.rejected if r.reason == RejectReason.DUPLICATE)
    assert (duplicate.line, duplicate.duplicate_of_line, duplicate.alias) == (12, 11, "second")
    for row in result.rejected:
        assert row.message and row.line >= 2


def test_line_numbers_are_the_lines_a_person_sees(tmp_path: Path) -> None:
    text = (
        "\n"  # 1: blank before the header
        "phone,alias\r\n"  # 2: header
        "+14155552671,one\r\n"  # 3
        "\r\n"  # 4: blank
        "   \n"  # 5: spaces only
        ",,\n"  # 6: an empty spreadsheet row
        '+14155552672,"two\nlines"\n'  # 7-8: one record (a line break is no alias)
        "+14155552673,three\r"  # 9: old Mac line end
        "+14155552674,four"  # 10: no final newline
    )
    result = ingest_csv(write(tmp_path, text))
    assert [row.line for row in result.accepted] == [3, 9, 10]
    assert [(row.line, row.reason) for row in result.rejected] == [(7, RejectReason.BAD_ALIAS)]
    assert result.blank_lines == 4
    assert result.data_rows == 4


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("cp1252", b""),
    ],
)
def test_every_encoding_and_delimiter(
    tmp_path: Path, delimiter: str, encoding: str, bom: bytes
) -> None:
    rows = [
        ["Phone Number", "Name", "Country"],
        ["+49 30 901820", "Müller, Zoë", "DE"],
        ["030 12345678", "Café Straße", "de"],
        ["0044 20 7946 0958", "Ærøskøbing", ""],
    ]
    lines = []
    for row in rows:
        lines.append(delimiter.join(f'"{c}"' if delimiter in c or "," in c else c for c in row))
    path = tmp_path / "in.csv"
    path.write_bytes(bom + ("\r\n".join(lines) + "\r\n").encode(encoding))
    result = ingest_csv(path)
    assert result.delimiter == delimiter
    assert [row.e164 for row in result.accepted] == [
        "+4930901820",
        "+493012345678",
        "+442079460958",
    ]
    assert [row.alias for row in result.accepted] == ["Müller, Zoë", "Café Straße", "Ærøskøbing"]


def test_an_explicit_encoding_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,alias\n+74951234567,Москва\n", encoding="koi8-r")
    assert ingest_csv(path, encoding="koi8-r").accepted[0].alias == "Москва"
    assert ingest_csv(path).accepted[0].alias != "Москва"  # read, but as cp1252: the note says
    with pytest.raises(IngestInputError, match="not valid utf-8"):
        ingest_csv(path, encoding="utf-8")
    with pytest.raises(IngestOptionError, match="unknown encoding"):
        ingest_csv(path, encoding="no-such-codec")


def test_a_single_column_file_keeps_commas_inside_the_number(tmp_path: Path) -> None:
    result = ingest_csv(write(tmp_path, "phone\n+1 415 555 2671\n4,155,552,672\n"))
    assert result.accepted[0].e164 == "+14155552671"
    assert result.rejected[0].raw == "4,155,552,672"


def test_ragged_rows_lose_nothing(tmp_path: Path) -> None:
    text = "phone,alias,notes\n+14155552671\n+14155552672,b,n2,surplus,more\n"
    result = ingest_csv(write(tmp_path, text))
    short, long = result.accepted
    assert (short.alias, short.extra) == (None, {"notes": ""})
    assert long.extra == {"notes": "n2", "column_4": "surplus", "column_5": "more"}
    assert result.extra_columns == ["notes", "column_4", "column_5"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("\n \n,,\n", "empty"),
        ("name,email\nAda,ada@example.com\n", "columns found: 'name', 'email'"),
        ("+14155552671\n+14155552672\n", re.escape("columns found: '+14155552671'")),
    ],
)
def test_unusable_files_raise_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(IngestInputError, match=message):
        ingest_csv(write(tmp_path, text))


def test_an_unclosed_quote_that_swallows_the_file_is_named(tmp_path: Path) -> None:
    text = 'phone,alias\n+14155552671,"open\n' + "+14155552672,x\n" * 10_000
    with pytest.raises(IngestInputError, match=r"starting on line 2 .*never closed"):
        ingest_csv(write(tmp_path, text))


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(IngestInputError, match="file not found"):
        ingest_csv(tmp_path / "nope.csv")
    with pytest.raises(IngestInputError, match="directory"):
        ingest_csv(tmp_path)


def test_header_only_is_an_empty_result(tmp_path: Path) -> None:
    result = ingest_csv(write(tmp_path, "phone_number,alias\n"))
    assert (result.data_rows, result.accepted, result.rejected) == (0, [], [])


def test_defaults_fill_empty_cells(tmp_path: Path) -> None:
    text = (
        "phone,channel,subaccount,country\n"
        "020 7946 0958,,,GB\n"
        "7911 123456,sms,SAMTU0Y2FKNGETYZDKNI,\n"
    )
    result = ingest_csv(
        write(tmp_path, text), default_region="gb", default_channel="call", default_subaccount=SUB
    )
    first, second = result.accepted
    assert (first.channel, first.subaccount) == (Channel.CALL, SUB)
    assert (second.channel, second.subaccount) == (Channel.SMS, "SAMTU0Y2FKNGETYZDKNI")
    assert second.e164 == "+447911123456"


def test_warnings(tmp_path: Path) -> None:
    text = (
        "phone,country,channel,alias\n"
        "+44 20 7946 0958,,sms,landline by sms\n"
        "+44 20 7946 0959,,call,landline by call\n"
        "4915123456789,US,,lost plus\n"
        "+33 6 12 34 56 78,DE,,wrong country\n"
        "+1 415 555 2671,,,a\n"
        "+1 415 555 2671,,call,b\n"
    )
    result = ingest_csv(write(tmp_path, text))
    kinds = {(w.line, w.kind) for w in result.warnings}
    assert kinds == {
        (2, WarningKind.FIXED_LINE_SMS),
        (4, WarningKind.ASSUMED_PLUS),
        (4, WarningKind.COUNTRY_MISMATCH),
        (5, WarningKind.COUNTRY_MISMATCH),
        (7, WarningKind.CONFLICTING_DUPLICATE),
    }
    conflict = next(r for r in result.rejected if r.line == 7)
    assert "alias 'b' here, 'a' there" in conflict.message
    assert "channel 'call' here, 'sms' there" in conflict.message


def test_reports_round_trip(tmp_path: Path) -> None:
    result = ingest_csv(SAMPLE, default_channel="sms")
    accepted_path, rejects_path = write_reports(result, tmp_path / "out" / "check")
    with accepted_path.open(newline="", encoding="utf-8") as handle:
        accepted = list(csv.DictReader(handle))
    with rejects_path.open(newline="", encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    assert [row["e164"] for row in accepted] == [row.e164 for row in result.accepted]
    assert accepted[0]["line"] == "2" and accepted[0]["national"] == "(415) 555-2671"
    assert any("fixed_line_sms" in row["warnings"] for row in accepted)
    assert [int(row["line"]) for row in rejects] == [row.line for row in result.rejected]
    assert {row["reason"] for row in rejects} == {str(r) for r in result.counts_by_reason()}
    # The rejects file is itself importable: fix it, feed it back, nothing lost on the way.
    again = ingest_csv(rejects_path)
    assert again.data_rows == len(result.rejected)
    assert again.extra_columns == ["line", "reason", "message", "duplicate_of_line"]


def test_two_processes_give_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "MIN_ROWS_FOR_HELPERS", 0)
    monkeypatch.setattr(parallel, "BATCH", 7)
    one = ingest_csv(SAMPLE, workers=1)
    two = ingest_csv(SAMPLE, workers=2)
    assert two == one


def test_the_cycle_collector_is_left_as_it_was_found() -> None:
    assert gc.isenabled()
    result = ingest_csv(SAMPLE)
    assert gc.isenabled()
    # the result's rows went straight to the oldest generation, not through the young ones
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert id(result.accepted[0]) in oldest
    gc.disable()
    try:
        ingest_csv(SAMPLE)
        assert not gc.isenabled()
    finally:
        gc.enable()
    marker = [object()]  # a caller's frozen objects (a pre-fork server) stay frozen
    gc.freeze()
    try:
        ingest_csv(SAMPLE)
        assert gc.get_freeze_count() > 0
        assert not any(o is marker for o in gc.get_objects())  # frozen: in no generation
    finally:
        gc.unfreeze()
    assert any(o is marker for o in gc.get_objects())
