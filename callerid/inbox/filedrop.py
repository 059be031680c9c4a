"""The file drop: a folder of CSV or JSONL message files exported from any SMS gateway.

Each line is one message with `from`, `to`, `text`, `received_at` (ISO 8601; naive means UTC) and
optionally `message_uuid` / `id`. A file is taken once: after its good lines are stored (and
committed), it is moved to `done/`, and its rejected lines are written next to it as
`done/<name>.rejected.jsonl`, each with its line number, the reason and the raw line. Files whose
name starts with `.` are still being written (writers rename them into place) and are left alone.
A message's identity is its id when the file gives one, else a hash of its fields, so the same
message exported twice is stored once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from callerid.inbox import store
from callerid.inbox.db import SessionScope
from callerid.inbox.models import (
    MAX_EXTERNAL_ID_CHARS,
    MAX_NUMBER_CHARS,
    MAX_TEXT_CHARS,
    InboundMessage,
    MessageSource,
)

log = logging.getLogger(__name__)

DONE_DIR = "done"
SUFFIXES = (".csv", ".jsonl")
MAX_FILE_BYTES = 50 * 1024 * 1024


class RejectReason(StrEnum):
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    BAD_TIMESTAMP = "bad_timestamp"
    TOO_LONG = "too_long"
    BAD_ENCODING = "bad_encoding"
    FILE_TOO_LARGE = "file_too_large"


@dataclass(frozen=True)
class RejectedLine:
    line: int
    reason: RejectReason
    detail: str
    raw: str


@dataclass(frozen=True)
class FileResult:
    path: str
    stored: int
    duplicates: int
    rejected: tuple[RejectedLine, ...]


class _Reject(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def parse_timestamp(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    text = str(value or "").strip()
    if not text:
        raise _Reject(RejectReason.MISSING_FIELD, "received_at is empty")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "received_at is not ISO 8601") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _field(record: dict[str, Any], name: str, limit: int, required: bool = True) -> str | None:
    value = record.get(name)
    if value is None or str(value).strip() == "":
        if required:
            raise _Reject(RejectReason.MISSING_FIELD, f"{name} is missing")
        return None
    text = str(value)
    if len(text) > limit:
        raise _Reject(RejectReason.TOO_LONG, f"{name} is longer than {limit} characters")
    return text


def to_message(record: dict[str, Any], account: str | None) -> InboundMessage:
    lowered = {str(k).strip().lower(): v for k, v in record.items()}
    sender = _field(lowered, "from", MAX_NUMBER_CHARS)
    receiver = _field(lowered, "to", MAX_NUMBER_CHARS, required=False)
    text = _field(lowered, "text", MAX_TEXT_CHARS) or ""
    received_at = parse_timestamp(lowered.get("received_at"))
    given = lowered.get("message_uuid") or lowered.get("id")
    if given and len(str(given)) <= MAX_EXTERNAL_ID_CHARS - 4:
        external_id = f"id:{given}"
    else:
        digest = hashlib.sha256(
            json.dumps([sender, receiver, text, received_at.isoformat()]).encode()
        ).hexdigest()
        external_id = f"sha256:{digest}"
    return InboundMessage(
        source=MessageSource.FILE,
        external_id=external_id,
        from_number=sender.strip() if sender else None,
        to_number=receiver.strip() if receiver else None,
        text=text,
        received_at=received_at,
        account=account,
    )


def _records(path: Path, content: str) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
    """(line number, raw line, record or None when the line is not a JSON object)."""
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(content))
        for row in reader:
            record = {k: v for k, v in row.items() if k is not None}
            yield reader.line_num, json.dumps(record), record
        return
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            yield number, raw, None
            continue
        yield number, raw, record if isinstance(record, dict) else {"__not_an_object__": True}


def read_file(path: Path, account: str | None) -> tuple[list[InboundMessage], list[RejectedLine]]:
    if path.stat().st_size > MAX_FILE_BYTES:
        return [], [RejectedLine(0, RejectReason.FILE_TOO_LARGE, "file over 50 MB", "")]
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [RejectedLine(0, RejectReason.BAD_ENCODING, "file is not UTF-8", "")]
    messages: list[InboundMessage] = []
    rejected: list[RejectedLine] = []
    for number, raw, record in _records(path, content):
        try:
            if record is None:
                raise _Reject(RejectReason.BAD_JSON, "line is not valid JSON")
            if "__not_an_object__" in record:
                raise _Reject(RejectReason.NOT_AN_OBJECT, "line is not a JSON object")
            messages.append(to_message(record, account))
        except _Reject as exc:
            rejected.append(RejectedLine(number, exc.reason, exc.detail, raw))
    return messages, rejected


def _move_done(path: Path, rejected: list[RejectedLine]) -> Path:
    done = path.parent / DONE_DIR
    done.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = done / f"{stamp}-{path.name}"  # a later file of the same name keeps its own record
    if rejected:
        report = done / f"{target.name}.rejected.jsonl"
        with report.open("w", encoding="utf-8") as handle:
            for item in rejected:
                entry = {"line": item.line, "reason": item.reason.value, "detail": item.detail}
                handle.write(json.dumps({**entry, "raw": item.raw}) + "\n")
    os.replace(path, target)
    return target


def pending_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES
    ]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def take_files(folder: Path | str, scope: SessionScope, account: str | None) -> list[FileResult]:
    """Store every message of every waiting file, then move each file to `done/`."""
    results = []
    for path in pending_files(Path(folder)):
        messages, rejected = read_file(path, account)
        stored = 0
        with scope() as session:
            for message in messages:
                stored += store.insert_message(session, message)[1]
        target = _move_done(path, rejected)
        log.info(
            "drop file %s: %d stored, %d already there, %d rejected",
            path.name,
            stored,
            len(messages) - stored,
            len(rejected),
        )
        results.append(FileResult(str(target), stored, len(messages) - stored, tuple(rejected)))
    return results
