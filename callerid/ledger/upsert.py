"""Registering numbers in bulk: insert the new ones, refresh the details of the waiting ones.

Rules (one row per account and E.164):
* A new number is inserted as `queued`, with a `None -> queued` event ("registered").
* A number already in the ledger keeps its status, attempts and verification.
* Its alias, subaccount, country and channel are replaced by the new record's when it is not
  final (queued, live or expired): the next initiation uses what the latest file says. A live
  verification keeps what Plivo was sent; reconcile reports any drift once it is verified.
* A final number (verified, already_verified, failed) keeps its details: they describe what was
  verified; changing them is reconcile's job (`apply`), not a re-import's.
* Within one call the first record of an E.164 wins (ingest reports later ones as duplicates).
* With a `run_id`, every number of the call becomes a member of that run (`run_numbers`), which
  is what the run's status counts count (`callerid.ledger.run_counts`).

Work goes in chunks of `CHUNK` rows: one SELECT of the known rows, one
`INSERT .. ON CONFLICT DO NOTHING RETURNING` for the new ones (PostgreSQL: from `unnest` of array
parameters, events in the same statement; SQLite: multi-row VALUES, then the events), one
executemany UPDATE for changed details.
A number another process inserts between our SELECT and INSERT is left as that process wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, String, Table, any_, bindparam, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callerid.ledger import run_counts
from callerid.ledger.errors import InvalidRecordError
from callerid.ledger.models import FINAL_STATUSES, Event, Number, NumberStatus, UTCDateTime

CHUNK = 1000  # rows per statement: 7 parameters each stays far below every parameter limit
DETAILS = ("alias", "subaccount", "country", "channel")
DEFAULT_CHANNEL = "sms"
_numbers = cast(Table, Number.__table__)
_events = cast(Table, Event.__table__)
_FINAL = frozenset(s.value for s in FINAL_STATUSES)


@dataclass(frozen=True, slots=True)
class NumberRecord:
    """What the ledger needs to know about a number to verify it."""

    e164: str
    alias: str | None = None
    subaccount: str | None = None
    country: str | None = None
    channel: str = DEFAULT_CHANNEL


@dataclass(frozen=True, slots=True)
class UpsertResult:
    inserted: int = 0
    updated: int = 0  # details refreshed on a number that is not final
    unchanged: int = 0
    kept_final: int = 0  # details differed but the number is final, so they were kept

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.kept_final + other.kept_final,
        )


def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


CHANNELS = ("sms", "call")


def _check(index: int, record: NumberRecord) -> NumberRecord:
    """The same limits on every database (SQLite would store an over-long value silently)."""
    e164 = record.e164
    if not isinstance(e164, str) or not e164.startswith("+") or not e164[1:].isdigit():
        raise InvalidRecordError(index, f"e164 must look like +15551234567, got {e164!r}")
    if not 8 <= len(e164) <= 16:
        raise InvalidRecordError(index, f"e164 {e164} has {len(e164) - 1} digits (7 to 15)")
    if record.channel not in CHANNELS:
        raise InvalidRecordError(index, f"channel must be sms or call, got {record.channel!r}")
    if record.country is not None and not (len(record.country) == 2 and record.country.isalpha()):
        raise InvalidRecordError(index, f"country must be 2 letters, got {record.country!r}")
    for name, limit in (("alias", 64), ("subaccount", 32)):
        value = getattr(record, name)
        if value is not None and len(value) > limit:
            raise InvalidRecordError(index, f"{name} is longer than {limit} characters")
    return record


def as_record(index: int, item: Any) -> NumberRecord:
    """A checked `NumberRecord` from a record, an ingest `AcceptedRow` (its `region` is the
    country), or a mapping with the same keys."""
    if isinstance(item, NumberRecord):
        return _check(index, item)
    country = _field(item, "country") or _field(item, "region")
    channel = _field(item, "channel")
    record = NumberRecord(
        e164=_field(item, "e164"),
        alias=_field(item, "alias") or None,
        subaccount=_field(item, "subaccount") or None,
        country=str(country).upper() if country else None,
        channel=str(channel) if channel else DEFAULT_CHANNEL,
    )
    return _check(index, record)


def _unique_records(records: Iterable[Any]) -> Iterator[NumberRecord]:
    seen: set[str] = set()
    for index, item in enumerate(records):
        record = as_record(index, item)
        if record.e164 not in seen:
            seen.add(record.e164)
            yield record


def _chunks(records: Iterator[NumberRecord]) -> Iterator[list[NumberRecord]]:
    chunk: list[NumberRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# PostgreSQL: five array parameters instead of thousands of scalars (psycopg re-parses a long
# multi-row VALUES statement on every call, which cost more than the insert itself), and the
# registered events written by the same statement.
_PG_INSERT = text(
    """
    WITH new AS (
        INSERT INTO numbers (account, e164, alias, subaccount, country, channel, status,
                             attempts, wrong_otps, last_run_id, created_at, updated_at, version)
        SELECT :account, r.e164, r.alias, r.subaccount, r.country, r.channel, 'queued',
               0, 0, :run_id, :now, :now, 1
        FROM unnest(CAST(:e164s AS text[]), CAST(:aliases AS text[]),
                    CAST(:subaccounts AS text[]), CAST(:countries AS text[]),
                    CAST(:channels AS text[])) AS r(e164, alias, subaccount, country, channel)
        ORDER BY r.e164
        ON CONFLICT (account, e164) DO NOTHING
        RETURNING id, e164
    ), logged AS (
        INSERT INTO events (number_id, from_status, to_status, reason, run_id, at)
        SELECT id, NULL, 'queued', 'registered', :run_id, :now FROM new
    )
    SELECT id, e164 FROM new
    """
).bindparams(bindparam("now", type_=UTCDateTime()))


def _insert_pg(
    session: Session,
    account: str,
    fresh: Sequence[NumberRecord],
    run_id: str | None,
    now: datetime,
) -> list[tuple[int, str]]:
    params = {
        "account": account,
        "run_id": run_id,
        "now": now,
        "e164s": [r.e164 for r in fresh],
        "aliases": [r.alias for r in fresh],
        "subaccounts": [r.subaccount for r in fresh],
        "countries": [r.country for r in fresh],
        "channels": [r.channel for r in fresh],
    }
    return [(int(i), str(e)) for i, e in session.execute(_PG_INSERT, params)]


def _insert_other(
    session: Session,
    account: str,
    fresh: Sequence[NumberRecord],
    run_id: str | None,
    now: datetime,
) -> list[tuple[int, str]]:
    rows = [
        {
            "account": account,
            "e164": r.e164,
            "alias": r.alias,
            "subaccount": r.subaccount,
            "country": r.country,
            "channel": r.channel,
            "status": NumberStatus.QUEUED.value,
            "attempts": 0,
            "wrong_otps": 0,
            "last_run_id": run_id,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        for r in fresh
    ]
    if session.get_bind().dialect.name == "sqlite":
        new: Insert = sqlite.insert(_numbers).on_conflict_do_nothing(
            index_elements=["account", "e164"]
        )
    else:  # other databases: a concurrent insert ends in the unique constraint
        new = insert(_numbers)
    statement = new.returning(_numbers.c.id, _numbers.c.e164)
    inserted = [(int(i), str(e)) for i, e in session.execute(statement, rows)]
    if inserted:
        session.execute(
            insert(_events),
            [
                {
                    "number_id": i,
                    "from_status": None,
                    "to_status": NumberStatus.QUEUED.value,
                    "reason": "registered",
                    "run_id": run_id,
                    "at": now,
                }
                for i, _ in inserted
            ],
        )
    return inserted


def _known(session: Session, account: str, chunk: Sequence[NumberRecord]) -> dict[str, Any]:
    wanted = [r.e164 for r in chunk]
    if session.get_bind().dialect.name == "postgresql":
        match = Number.e164 == any_(bindparam("wanted", wanted, type_=postgresql.ARRAY(String)))
    else:
        match = Number.e164.in_(wanted)
    query = select(Number.id, Number.e164, Number.status, *(getattr(Number, d) for d in DETAILS))
    return {row.e164: row for row in session.execute(query.where(Number.account == account, match))}


def _join_run(
    session: Session,
    account: str,
    run_id: str,
    known: Mapping[str, Any],
    fresh: Sequence[NumberRecord],
    inserted: Sequence[tuple[int, str]],
) -> None:
    """Make the chunk's numbers members of `run_id` (its per-run counts, `run_counts.py`)."""
    ids = [row.id for row in known.values()] + [i for i, _ in inserted]
    if len(inserted) < len(fresh):  # another process inserted some between our SELECT and INSERT
        ours = {e for _, e in inserted}
        late = [r for r in fresh if r.e164 not in ours]
        ids += [row.id for row in _known(session, account, late).values()]
    run_counts.add_members(session, run_id, ids)


def _upsert_chunk(
    session: Session, account: str, chunk: Sequence[NumberRecord], run_id: str | None, now: datetime
) -> UpsertResult:
    known = _known(session, account, chunk)
    fresh = [r for r in chunk if r.e164 not in known]
    inserted: list[tuple[int, str]] = []
    if fresh:
        insert_new = (
            _insert_pg if session.get_bind().dialect.name == "postgresql" else _insert_other
        )
        inserted = insert_new(session, account, fresh, run_id, now)
    if run_id is not None:
        _join_run(session, account, run_id, known, fresh, inserted)
    changes: list[dict[str, Any]] = []
    unchanged = kept_final = 0
    for record in chunk:
        row = known.get(record.e164)
        if row is None:
            continue
        if all(getattr(row, d) == getattr(record, d) for d in DETAILS):
            unchanged += 1
        elif row.status in _FINAL:
            kept_final += 1
        else:
            changes.append({"b_id": row.id, **{f"b_{d}": getattr(record, d) for d in DETAILS}})
    if changes:
        refresh = (
            update(_numbers)
            .where(_numbers.c.id == bindparam("b_id"))
            .values(
                **{d: bindparam(f"b_{d}") for d in DETAILS},
                updated_at=now,
                version=_numbers.c.version + 1,
            )
        )
        session.execute(refresh, changes)
    return UpsertResult(len(inserted), len(changes), unchanged, kept_final)


def upsert_many(
    session: Session, account: str, records: Iterable[Any], run_id: str | None, now: datetime
) -> UpsertResult:
    session.flush()  # pending ORM changes first: the statements below bypass the ORM
    total = UpsertResult()
    for chunk in _chunks(_unique_records(records)):
        total += _upsert_chunk(session, account, chunk, run_id, now)
    return total
