"""The file drop: CSV and JSONL files taken once, moved to done/, rejected lines recorded."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

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
