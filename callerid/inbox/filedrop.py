"""The file drop: a folder of CSV or JSONL message files exported from any SMS gateway.

Each line is one message with `from`, `to`, `text`, `received_at` (ISO 8601; naive means UTC) and
optionally `message_uuid` / `id`. A file is taken once: after its good lines are stored (and
committed), a copy of it with every possible code masked (`****`, any 4-8 digit group, so years
and times too) is kept as `done/<stamp>-<name>`, its rejected lines are written next to it as
`done/<stamp>-<name>.rejected.jsonl` (each with its line number, the reason and the line, codes
masked the same way), and only then is the original removed: a crash on the way takes the file
again, and what it stored is stored once. No code outlives the take in `done/`.

One bad line is one rejected line, whatever is wrong with it (`bad_timestamp` for a time no
calendar holds, such as 1e20 or year 9999 west of UTC; `bad_value`, with the error's type, for
anything else a value cannot be used for); a file that cannot be read as a whole (not
UTF-8, over 50 MB, not CSV) is rejected whole, with its reason, and leaves the folder all the
same: nothing in one file keeps the files behind it from being taken. Files whose name starts
with `.` are still being written (writers rename them into place) and are left alone. A message's
identity is its id when the file gives one, else a hash of its fields, so the same message
exported twice is stored once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from callerid.masking import mask_codes_in_text

log = logging.getLogger(__name__)

DONE_DIR = "done"
SUFFIXES = (".csv", ".jsonl")
MAX_FILE_BYTES = 50 * 1024 * 1024
_COPY_CHARS = 1024 * 1024  # the masked copy is written a block at a time, whatever the file's size
_TRAILING_DIGITS_RE = re.compile(r"\d+\Z")


class RejectReason(StrEnum):
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    BAD_TIMESTAMP = "bad_timestamp"
    TOO_LONG = "too_long"
    BAD_ENCODING = "bad_encoding"
    FILE_TOO_LARGE = "file_too_large"
    BAD_CSV = "bad_csv"
    BAD_VALUE = "bad_value"


@dataclass(frozen=True)
class RejectedLine:
    line: int
    reason: RejectReason
    detail: str
    raw: str = field(repr=False)  # the line as it came, codes and all: masked when written


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


class _FileReject(Exception):
    """The file cannot be read as a whole (line 0 when no line is to blame)."""

    def __init__(self, line: int, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.line, self.reason, self.detail = line, reason, detail


def parse_timestamp(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # 1e20, NaN, inf
            raise _Reject(RejectReason.BAD_TIMESTAMP, "received_at is out of range") from None
    text = str(value or "").strip()
    if not text:
        raise _Reject(RejectReason.MISSING_FIELD, "received_at is empty")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "received_at is not ISO 8601") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)  # 9999-12-31T23:59:59-05:00 is past the last UTC year
    except OverflowError:
        raise _Reject(RejectReason.BAD_TIMESTAMP, "received_at is out of range") from None


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


# The csv module refuses a field over 131,072 characters by default, and the limit is process
# wide (the ingest raises it too): raised here as well, so a long field is one line rejected as
# too long, whichever command runs and whatever ran before it in the process.
_FIELD_LIMIT = 2**31 - 1


def _csv_records(content: str) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    reader = csv.DictReader(io.StringIO(content))
    try:
        for row in reader:
            record = {k: v for k, v in row.items() if k is not None}
            yield reader.line_num, json.dumps(record), record
    except csv.Error as exc:  # what the csv module cannot read at all
        # the csv module's words name characters and limits, never a field's value
        detail = mask_codes_in_text(f"file is not readable CSV: {exc}")
        raise _FileReject(reader.reader.line_num, RejectReason.BAD_CSV, detail) from None


def _records(path: Path, content: str) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
    """(line number, raw line, record or None when the line is not a JSON object)."""
    if path.suffix.lower() == ".csv":
        yield from _csv_records(content)
        return
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON; an int over 4300 digits; [[[[...
            yield number, raw, None
            continue
        yield number, raw, record if isinstance(record, dict) else {"__not_an_object__": True}


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise _FileReject(0, RejectReason.FILE_TOO_LARGE, "file over 50 MB")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _FileReject(0, RejectReason.BAD_ENCODING, "file is not UTF-8") from None


def read_file(path: Path, account: str | None) -> tuple[list[InboundMessage], list[RejectedLine]]:
    """The file's messages and its rejected lines (one line 0, or the line at fault, when the
    whole file is rejected: then no message of it is taken). OSError: the file cannot be read."""
    messages: list[InboundMessage] = []
    rejected: list[RejectedLine] = []
    try:
        for number, raw, record in _records(path, _read(path)):
            try:
                if record is None:
                    raise _Reject(RejectReason.BAD_JSON, "line is not valid JSON")
                if "__not_an_object__" in record:
                    raise _Reject(RejectReason.NOT_AN_OBJECT, "line is not a JSON object")
                messages.append(to_message(record, account))
            except _Reject as exc:
                rejected.append(RejectedLine(number, exc.reason, exc.detail, raw))
            except Exception as exc:  # whatever else one line holds, it is that line's fault
                detail = f"a value cannot be used ({type(exc).__name__})"  # no value: no code
                rejected.append(RejectedLine(number, RejectReason.BAD_VALUE, detail, raw))
    except _FileReject as exc:
        return [], [RejectedLine(exc.line, exc.reason, exc.detail, "")]
    return messages, rejected


def _mask_copy(path: Path, target: Path, block: int = _COPY_CHARS) -> None:
    """Write `path` to `target` with every possible code masked, a block at a time.

    Any bytes: what is not UTF-8 goes through unchanged (surrogateescape), so a file rejected for
    its encoding is kept as it came, but for its codes. A digit run at a block's end waits for the
    next block (a code may go on there); one of 9 or more digits is no code whatever follows, and
    only its last 9 digits wait, so memory stays one block however the file is made.
    """
    options: dict[str, Any] = {"encoding": "utf-8", "errors": "surrogateescape", "newline": ""}
    with path.open(**options) as source, target.open("w", **options) as copy:
        carry = ""
        while chunk := source.read(block):
            text = carry + chunk
            run = _TRAILING_DIGITS_RE.search(text)
            start = run.start() if run else len(text)
            if len(text) - start > 8:
                copy.write(mask_codes_in_text(text[:start]) + text[start:-9])
                carry = text[-9:]
            else:
                copy.write(mask_codes_in_text(text[:start]))
                carry = text[start:]
        copy.write(mask_codes_in_text(carry))
        copy.flush()
        os.fsync(copy.fileno())


def _write_report(report: Path, rejected: list[RejectedLine]) -> None:
    with report.open("w", encoding="utf-8") as handle:
        for item in rejected:
            entry = {"line": item.line, "reason": item.reason.value, "detail": item.detail}
            handle.write(json.dumps({**entry, "raw": mask_codes_in_text(item.raw)}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _write_into_place(target: Path, write: Callable[[Path], None]) -> None:
    """`write` fills (and fsyncs) a `.` file next to `target`, which is then renamed into place."""
    partial = target.with_name(f".{target.name}.partial")
    write(partial)
    os.replace(partial, target)


def _move_done(path: Path, rejected: list[RejectedLine]) -> Path:
    """Keep a masked copy of `path` (and its masked rejects) in `done/`, then remove `path`.

    Called once the file's messages are committed. Each file is written under a `.` name and
    renamed into place, so `done/` never shows half a file; a crash before the original is gone
    leaves it to be taken again (its messages are stored once), never a message lost.
    """
    done = path.parent / DONE_DIR
    done.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = done / f"{stamp}-{path.name}"  # a later file of the same name keeps its own record
    if rejected:
        report = done / f"{target.name}.rejected.jsonl"
        _write_into_place(report, lambda partial: _write_report(partial, rejected))
    _write_into_place(target, lambda partial: _mask_copy(path, partial))
    path.unlink(missing_ok=True)  # another taker may have taken it meanwhile
    return target


def pending_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found: list[tuple[float, str, Path]] = []
    for p in folder.iterdir():
        if p.name.startswith(".") or p.suffix.lower() not in SUFFIXES:
            continue
        try:
            if p.is_file():
                found.append((p.stat().st_mtime, p.name, p))
        except FileNotFoundError:
            continue  # taken by another taker while we looked
    return [p for _, _, p in sorted(found)]


def take_files(folder: Path | str, scope: SessionScope, account: str | None) -> list[FileResult]:
    """Store every message of every waiting file, then keep each file masked in `done/`.

    A file that cannot be opened (gone to another taker, no permission) is left where it is and
    the next file is taken; the database failing stops the take (nothing is lost: the file stays).
    """
    results = []
    for path in pending_files(Path(folder)):
        try:
            messages, rejected = read_file(path, account)
        except FileNotFoundError:
            continue  # taken by another taker since the listing
        except OSError as exc:
            log.warning("drop file %s cannot be read, left in place: %s", path.name, exc.strerror)
            continue
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
