"""The file drop: CSV and JSONL files taken once, moved to done/, rejected lines recorded."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from callerid.inbox import filedrop
from callerid.inbox.filedrop import RejectReason, take_files
from tests.inbox_support import ACCOUNT, all_messages, make_engine, scope_for


def engine_at(tmp_path: Path) -> sa.Engine:
    return make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")


def test_csv_and_jsonl_files_are_taken_once(tmp_path: Path) -> None:
    engine, drop = engine_at(tmp_path), tmp_path / "drop"
    drop.mkdir()
    (drop / "export.csv").write_text(
        "\ufeffFrom,To,Text,Received_At\n"  # a BOM and any capitalisation
        '14155550123,15005550100,"Your code is 4821",2026-11-27T03:00:00Z\n'
        '+14155550124,,"Code, again: 7777",2026-11-27 03:00:05\n'
        "14155550125,,no time here,\n",
        encoding="utf-8",
    )
    lines = [
        {"from": "+14155550126", "to": "+15005550100", "text": "1234", "received_at": 1795000000},
        {
            "from": "+14155550127",
            "text": "5678",
            "received_at": "2026-11-27T03:00:00+01:00",
            "message_uuid": "gw-1",
        },
    ]
    jsonl = "\n".join(json.dumps(x) for x in lines) + "\nnot json\n[1, 2]\n"
    (drop / "gateway.jsonl").write_text(
        jsonl + json.dumps({"from": "1", "text": "x" * 2000, "received_at": "2026-01-01"}) + "\n"
    )
    (drop / ".sandbox-partial.tmp").write_text("being written")
    (drop / "notes.txt").write_text("not a message file")

    results = {
        Path(r.path).name.split("-", 1)[1]: r for r in take_files(drop, scope_for(engine), ACCOUNT)
    }
    assert set(results) == {"export.csv", "gateway.jsonl"}
    csv_result, jsonl_result = results["export.csv"], results["gateway.jsonl"]
    assert (csv_result.stored, csv_result.duplicates) == (2, 0)
    assert [(r.line, r.reason) for r in csv_result.rejected] == [(4, RejectReason.MISSING_FIELD)]
    assert jsonl_result.stored == 2
    assert [(r.line, r.reason) for r in jsonl_result.rejected] == [
        (3, RejectReason.BAD_JSON),
        (4, RejectReason.NOT_AN_OBJECT),
        (5, RejectReason.TOO_LONG),
    ]
    # taken: moved to done/, rejects written beside with line, reason and raw line
    assert sorted(p.name for p in drop.iterdir()) == [".sandbox-partial.tmp", "done", "notes.txt"]
    reports = sorted((drop / "done").glob("*.rejected.jsonl"))
    assert len(reports) == 2
    first = [json.loads(line) for line in reports[1].read_text().splitlines()]
    assert (
        first[0]["line"] == 3 and first[0]["reason"] == "bad_json" and first[0]["raw"] == "not json"
    )

    rows = {r.from_number: r for r in all_messages(engine)}
    assert set(rows) == {"14155550123", "+14155550124", "+14155550126", "+14155550127"}
    assert rows["+14155550124"].text == "Code, again: 7777"
    assert rows["+14155550127"].external_id == "id:gw-1"
    assert all(r.source == "file" and r.account == ACCOUNT for r in rows.values())
    assert take_files(drop, scope_for(engine), ACCOUNT) == []  # nothing left to take


def test_the_same_message_in_a_later_file_is_stored_once(tmp_path: Path) -> None:
    engine, drop = engine_at(tmp_path), tmp_path / "drop"
    drop.mkdir()
    line = json.dumps(
        {"from": "14155550123", "text": "code 4821", "received_at": "2026-11-27T03:00:00Z"}
    )
    (drop / "a.jsonl").write_text(line + "\n")
    assert take_files(drop, scope_for(engine), ACCOUNT)[0].stored == 1
    (drop / "a.jsonl").write_text(line + "\n")  # the same export dropped again, same name
    again = take_files(drop, scope_for(engine), ACCOUNT)
    assert (again[0].stored, again[0].duplicates) == (0, 1)
    assert len(all_messages(engine)) == 1
    assert len(list((drop / "done").glob("*a.jsonl"))) == 2  # both takings recorded


def test_a_file_that_is_not_utf8_is_rejected_whole(tmp_path: Path) -> None:
    engine, drop = engine_at(tmp_path), tmp_path / "drop"
    drop.mkdir()
    (drop / "latin.csv").write_bytes(
        "from,text,received_at\n1,caf\xe9,2026-01-01\n".encode("latin-1")
    )
    result = take_files(drop, scope_for(engine), ACCOUNT)[0]
    assert [(r.line, r.reason) for r in result.rejected] == [(0, RejectReason.BAD_ENCODING)]
    assert all_messages(engine) == []
    assert take_files(tmp_path / "missing", scope_for(engine), ACCOUNT) == []


def done_files(drop: Path) -> dict[str, str]:
    """done/'s files by their name without the stamp, and what they hold."""
    return {
        p.name.split("-", 1)[1]: p.read_text(encoding="utf-8", errors="surrogateescape")
        for p in (drop / "done").iterdir()
    }


def test_done_keeps_no_code(tmp_path: Path) -> None:
    engine, drop = engine_at(tmp_path), tmp_path / "drop"
    drop.mkdir()
    good = {"from": "+14155550123", "text": "Your code is 482193", "received_at": "2026-11-27"}
    no_time = {"from": "+14155550124", "text": "Your code is 918273"}
    (drop / "a.jsonl").write_text(
        "\n".join([json.dumps(good), json.dumps(no_time), '{"text": "code 665544", oops']) + "\n"
    )
    (drop / "b.csv").write_text("from,text,received_at\n+14155550125,code 271828,\n")

    results = take_files(drop, scope_for(engine), ACCOUNT)
    assert [(r.stored, len(r.rejected)) for r in results] == [(1, 2), (0, 1)]
    assert [r.text for r in all_messages(engine)] == ["Your code is 482193"]  # stored as it came
    kept = done_files(drop)
    assert set(kept) == {"a.jsonl", "a.jsonl.rejected.jsonl", "b.csv", "b.csv.rejected.jsonl"}
    everything = "".join(kept.values())
    for code in ("482193", "918273", "665544", "271828"):
        assert code not in everything
    assert "Your code is ****" in kept["a.jsonl"] and "+14155550123" in kept["a.jsonl"]
    report = [json.loads(line) for line in kept["a.jsonl.rejected.jsonl"].splitlines()]
    assert [(r["line"], r["reason"]) for r in report] == [(2, "missing_field"), (3, "bad_json")]
    assert report[1]["raw"] == '{"text": "code ****", oops'
    assert sorted(p.name for p in drop.iterdir()) == ["done"]  # the originals are gone
    assert not list((drop / "done").glob(".*"))  # no partial file left behind


def test_the_masked_copy_is_the_file_with_its_codes_masked(tmp_path: Path) -> None:
    """Block by block, whatever the file: a code cut by a block's end is masked all the same."""
    from callerid.inbox.filedrop import _mask_copy
    from callerid.masking import mask_codes_in_text

    pieces = ["1234", "56789", "123456789012", "x", "\n", "é", "٤٨٢١", "12", " ", "1234567"]
    rng = __import__("random").Random(7)
    for attempt in range(200):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        source, copy = tmp_path / f"s{attempt}", tmp_path / f"c{attempt}"
        source.write_bytes(text.encode() + b"\xff\xfe 4821")  # and bytes that are not UTF-8
        _mask_copy(source, copy, block=rng.randint(1, 12))
        expected = mask_codes_in_text(text).encode() + b"\xff\xfe ****"
        assert copy.read_bytes() == expected, text


def test_files_rejected_whole_are_kept_masked(tmp_path: Path) -> None:
    engine, drop = engine_at(tmp_path), tmp_path / "drop"
    drop.mkdir()
    (drop / "latin.csv").write_bytes(b"from,text,received_at\n1,caf\xe9 4821,2026-01-01\n")
    result = take_files(drop, scope_for(engine), ACCOUNT)[0]
    assert [r.reason for r in result.rejected] == [RejectReason.BAD_ENCODING]
    kept = (drop / "done").glob("*-latin.csv")
    assert next(kept).read_bytes() == b"from,text,received_at\n1,caf\xe9 ****,****-01-01\n"


def test_a_bad_value_rejects_its_line_not_the_file(tmp_path: Path) -> None:
    engine, drop = engine_at(tmp_path), tmp_path / "drop"
    drop.mkdir()

    def line(n: int, received_at: object) -> str:
        return json.dumps(
            {"from": f"+1415555012{n}", "text": f"code 48219{n}", "received_at": received_at}
        )

    bad = [
        line(1, 1e20),
        '{"from": "+14155550122", "text": "code 482192", "received_at": NaN}',
        line(3, "9999-12-31T23:59:59-05:00"),
        line(4, "0001-01-01T00:00:00+01:00"),
        '{"from": "+14155550125", "text": "code 482195", "received_at": Infinity}',
        '{"from": "+14155550126", "text": "code 482196", "received_at": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"from": ["+14155550127"], "text": {"a": 1}, "received_at": "2026-11-27"}),
    ]
    (drop / "b.jsonl").write_text("\n".join([*bad, line(9, "2026-11-27T03:00:00Z")]) + "\n")
    (drop / "c.jsonl").write_text(line(8, "2026-11-27T03:00:00Z") + "\n")  # newer, behind it
    os.utime(drop / "b.jsonl", (1, 1))

    results = {
        Path(r.path).name.split("-", 1)[1]: r for r in take_files(drop, scope_for(engine), ACCOUNT)
    }
    assert set(results) == {"b.jsonl", "c.jsonl"}
    assert (results["b.jsonl"].stored, results["c.jsonl"].stored) == (2, 1)
    reasons = [(r.line, r.reason) for r in results["b.jsonl"].rejected]
    assert reasons == [
        (1, RejectReason.BAD_TIMESTAMP),
        (2, RejectReason.BAD_TIMESTAMP),
        (3, RejectReason.BAD_TIMESTAMP),
        (4, RejectReason.BAD_TIMESTAMP),
        (5, RejectReason.BAD_TIMESTAMP),
        (6, RejectReason.BAD_JSON),
        (7, RejectReason.BAD_JSON),
    ]
    # the last one stored: a list and a dict are turned to text; nothing here jams the take
    assert sorted(r.from_number for r in all_messages(engine)) == [
        "+14155550128",
        "+14155550129",
        "['+14155550127']",
    ]
    assert sorted(p.name for p in drop.iterdir()) == ["done"]


def test_a_field_over_the_csv_modules_default_limit_rejects_its_line_only(
    tmp_path: Path,
) -> None:
    """In a fresh process (the csv module's 131,072-character default, which the ingest raises
    for the whole process) the result is the same: the long line is rejected, not the file."""
    engine, drop = engine_at(tmp_path), tmp_path / "drop"
    drop.mkdir()
    huge = "x" * 200_000
    (drop / "big.csv").write_text(
        "from,text,received_at\n+14155550123,code 482193,2026-11-27\n"
        f"+14155550124,{huge} 918273,2026-11-27\n"
    )
    before = csv.field_size_limit(131_072)
    try:
        (taken,) = take_files(drop, scope_for(engine), ACCOUNT)
    finally:
        csv.field_size_limit(before)
    (rejected,) = taken.rejected
    assert (rejected.line, rejected.reason) == (3, RejectReason.TOO_LONG)
    assert [r.from_number for r in all_messages(engine)] == ["+14155550123"]


def test_a_file_the_csv_module_cannot_read_is_rejected_whole_and_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No real input reaches this since the limit is raised: a csv.Error is simulated."""
    engine, drop = engine_at(tmp_path), tmp_path / "drop"
    drop.mkdir()
    (drop / "bad.csv").write_text(
        "from,text,received_at\n+14155550123,code 482193,2026-11-27\n"
        "+14155550124,code 918273,2026-11-27\n"
    )
    (drop / "next.csv").write_text("from,text,received_at\n+14155550125,code 271828,2026-11-27\n")
    os.utime(drop / "bad.csv", (1, 1))
    real = csv.DictReader

    class Breaks(real):  # type: ignore[misc, valid-type]
        def __next__(self) -> dict[str, str]:
            row = super().__next__()
            if "918273" in row.get("text", ""):
                raise csv.Error("field larger than field limit (131072)")
            return row

    monkeypatch.setattr(filedrop.csv, "DictReader", Breaks)
    first = take_files(drop, scope_for(engine), ACCOUNT)
    assert [Path(r.path).name.split("-", 1)[1] for r in first] == ["bad.csv", "next.csv"]
    (rejected,) = first[0].rejected
    assert (rejected.line, rejected.reason) == (3, RejectReason.BAD_CSV)
    assert "field larger than field limit" in rejected.detail
    assert [r.from_number for r in all_messages(engine)] == ["+14155550125"]
    assert take_files(drop, scope_for(engine), ACCOUNT) == []  # not taken again and again
    report = next((drop / "done").glob("*-bad.csv.rejected.jsonl")).read_text()
    assert json.loads(report)["reason"] == "bad_csv"
    assert "482193" not in next((drop / "done").glob("*-bad.csv")).read_text()


def test_whatever_else_one_line_holds_rejects_that_line_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any error a line's values raise (here parse_timestamp fails as no code foresaw) rejects
    that line with its type, never the line's text (it may hold a code)."""
    real = filedrop.parse_timestamp

    def failing(value: object) -> object:
        if value == "poison":
            raise ArithmeticError("cannot use code 918273")
        return real(value)

    monkeypatch.setattr(filedrop, "parse_timestamp", failing)
    engine, drop = engine_at(tmp_path), tmp_path / "drop"
    drop.mkdir()
    lines = [
        {"from": "+14155550123", "text": "code 918273", "received_at": "poison"},
        {"from": "+14155550124", "text": "code 482193", "received_at": "2026-11-27"},
    ]
    (drop / "a.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (result,) = take_files(drop, scope_for(engine), ACCOUNT)
    assert result.stored == 1
    (rejected,) = result.rejected
    assert (rejected.line, rejected.reason) == (1, RejectReason.BAD_VALUE)
    assert rejected.detail == "a value cannot be used (ArithmeticError)"


def test_nul_and_lone_surrogates_are_stored_on_every_database(db_url: str, tmp_path: Path) -> None:
    """PostgreSQL refuses NUL in text, and no driver encodes a lone surrogate: such a line once
    failed the whole file's insert, every take. They are stored as U+FFFD."""
    engine, drop = make_engine(db_url), tmp_path / "drop"
    drop.mkdir()
    lines = [
        {"from": "+14155550123", "text": "Your code\x00 is 4821", "received_at": "2026-11-27"},
        {"from": "+14155550124", "text": "code 7777 \ud83d", "received_at": "2026-11-27"},
        {
            "from": "+1415555\x000125",
            "text": "12\x0034",
            "received_at": "2026-11-27",
            "id": "a\x00",
        },
    ]
    (drop / "a.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (result,) = take_files(drop, scope_for(engine), ACCOUNT)
    assert (result.stored, result.rejected) == (3, ())
    rows = all_messages(engine)
    assert [r.text for r in rows] == ["Your code\ufffd is 4821", "code 7777 \ufffd", "12\ufffd34"]
    assert (rows[2].from_number, rows[2].external_id) == ("+1415555\ufffd0125", "id:a\ufffd")
