"""Per-run status counts that cost the same to read at 1,000 numbers and at 100,000.

The loop asks "how many of this run's numbers are queued, pending, ..." every round. Counting the
run's rows each time grows with the run (issue 14), so the database keeps the counts itself:

* `run_numbers` (run_id, number_id): which numbers a run registered (written by `upsert_many`).
* `run_counts` (run_id, status, n): signed deltas. Triggers insert them in the same transaction
  as the change they count: +1 for a number's status when it joins a run, and -1 old / +1 new for
  every run of a number whose status changes, whatever code changed it (the repository's ORM
  transitions, a bulk claim, a hand-written UPDATE).
* A run's count of a status is the SUM of its rows; `compact` folds a run's rows into one per
  status once there are more than a few, so a read sums a bounded number of rows.

Why deltas and not one counter row per (run, status) updated in place: on PostgreSQL the loop's
transactions (claim, record, expire) run at once and would lock the same counter rows in
different orders (deadlocks), and serialize on them. Inserts contend for nothing. Compaction
deletes the rows it folds (`DELETE .. RETURNING`) and inserts their sums in one transaction: two
compactions never fold a row twice (a row deleted by one is skipped by the other), and an
uncommitted delta is invisible to both until its transaction commits.

A run's membership is dropped when it finishes (its counts stay, frozen, as a record); starting
a run id again clears both, and registration rebuilds them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from callerid.ledger.models import RunCount, RunNumber

# Fold a run's rows once it has more than this many: a read then sums at most this many plus what
# one round of the loop adds.
COMPACT_ABOVE = 64
_CHUNK = 1000
_members = cast(Table, RunNumber.__table__)
_counts = cast(Table, RunCount.__table__)

# -- the triggers (installed by migration 0003, and by create_all through the models) -----------

SQLITE_DDL = (
    """
    CREATE TRIGGER trg_numbers_run_counts AFTER UPDATE OF status ON numbers
    WHEN OLD.status <> NEW.status
    BEGIN
        INSERT INTO run_counts (run_id, status, n)
        SELECT run_id, OLD.status, -1 FROM run_numbers WHERE number_id = NEW.id
        UNION ALL
        SELECT run_id, NEW.status, 1 FROM run_numbers WHERE number_id = NEW.id;
    END
    """,
    """
    CREATE TRIGGER trg_run_numbers_counts AFTER INSERT ON run_numbers
    BEGIN
        INSERT INTO run_counts (run_id, status, n)
        SELECT NEW.run_id, status, 1 FROM numbers WHERE id = NEW.number_id;
    END
    """,
)
SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS trg_run_numbers_counts",
    "DROP TRIGGER IF EXISTS trg_numbers_run_counts",
)

# PostgreSQL: statement-level triggers with transition tables, so a bulk claim of 100 numbers
# writes one aggregated delta per (run, status) instead of 200 rows. (A trigger with transition
# tables may not name columns, so it fires on every UPDATE of numbers; one that changes no status
# joins to nothing.)
POSTGRESQL_DDL = (
    """
    CREATE FUNCTION callerid_count_status_changes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO run_counts (run_id, status, n)
        SELECT m.run_id, d.status, SUM(d.n)::integer
        FROM (
            SELECT o.id, o.status, -1 AS n FROM old_rows o JOIN new_rows w ON w.id = o.id
            WHERE o.status <> w.status
            UNION ALL
            SELECT w.id, w.status, 1 FROM old_rows o JOIN new_rows w ON w.id = o.id
            WHERE o.status <> w.status
        ) d
        JOIN run_numbers m ON m.number_id = d.id
        GROUP BY m.run_id, d.status
        HAVING SUM(d.n) <> 0;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER trg_numbers_run_counts AFTER UPDATE ON numbers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION callerid_count_status_changes()
    """,
    """
    CREATE FUNCTION callerid_count_new_members() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO run_counts (run_id, status, n)
        SELECT a.run_id, x.status, COUNT(*)::integer
        FROM added a JOIN numbers x ON x.id = a.number_id
        GROUP BY a.run_id, x.status;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER trg_run_numbers_counts AFTER INSERT ON run_numbers
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION callerid_count_new_members()
    """,
)
POSTGRESQL_DROP = (
    "DROP TRIGGER IF EXISTS trg_run_numbers_counts ON run_numbers",
    "DROP FUNCTION IF EXISTS callerid_count_new_members()",
    "DROP TRIGGER IF EXISTS trg_numbers_run_counts ON numbers",
    "DROP FUNCTION IF EXISTS callerid_count_status_changes()",
)


def install_triggers(connection: Connection) -> None:
    """Create the counting triggers for this connection's database (SQLite or PostgreSQL)."""
    name = connection.dialect.name
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"per-run counts need triggers written for {name}")
    for statement in SQLITE_DDL if name == "sqlite" else POSTGRESQL_DDL:
        connection.exec_driver_sql(statement)


def drop_triggers(connection: Connection) -> None:
    for statement in SQLITE_DROP if connection.dialect.name == "sqlite" else POSTGRESQL_DROP:
        connection.exec_driver_sql(statement)


# -- membership ------------------------------------------------------------------------------


def add_members(session: Session, run_id: str, number_ids: Sequence[int]) -> None:
    """Record `number_ids` as numbers of `run_id` (idempotent); the triggers count them."""
    if session.get_bind().dialect.name == "postgresql":
        statement = text(
            "INSERT INTO run_numbers (run_id, number_id) "
            "SELECT :run_id, unnest(CAST(:ids AS integer[])) ON CONFLICT DO NOTHING"
        )
        for i in range(0, len(number_ids), _CHUNK):
            session.execute(statement, {"run_id": run_id, "ids": list(number_ids[i : i + _CHUNK])})
        return
    ignore = sqlite.insert(_members).on_conflict_do_nothing()
    for i in range(0, len(number_ids), _CHUNK):
        rows = [{"run_id": run_id, "number_id": n} for n in number_ids[i : i + _CHUNK]]
        session.execute(ignore, rows)


def forget_members(session: Session, run_id: str) -> None:
    """The run is over: its numbers stop being counted for it (its counts stay as they are)."""
    session.execute(delete(_members).where(_members.c.run_id == run_id))


def clear(session: Session, run_id: str) -> None:
    """Membership and counts gone: a run id started again registers and counts from scratch."""
    session.execute(delete(_members).where(_members.c.run_id == run_id))
    session.execute(delete(_counts).where(_counts.c.run_id == run_id))


# -- reading ---------------------------------------------------------------------------------

_READ = (
    select(_counts.c.status, func.sum(_counts.c.n), func.count())
    .where(_counts.c.run_id == bindparam("run_id"))
    .group_by(_counts.c.status)
)


def read(session: Session | Connection, run_id: str) -> tuple[dict[str, int], int]:
    """(count by status, rows summed). Statuses with a count of 0 are left out."""
    counts: dict[str, int] = {}
    rows = 0
    for status, total, n in session.execute(_READ, {"run_id": run_id}):
        rows += int(n)
        if int(total):
            counts[str(status)] = int(total)
    return counts, rows


def compact(session: Session, run_id: str) -> int:
    """Fold the run's delta rows into one row per status; returns how many rows were folded.

    Runs in the caller's transaction; commit it. Rows another transaction has not committed yet
    are not seen and are folded by a later compaction."""
    folded = session.execute(
        delete(_counts).where(_counts.c.run_id == run_id).returning(_counts.c.status, _counts.c.n)
    ).all()
    sums: dict[str, int] = defaultdict(int)
    for status, n in folded:
        sums[str(status)] += int(n)
    rows: list[dict[str, Any]] = [
        {"run_id": run_id, "status": s, "n": n} for s, n in sorted(sums.items()) if n
    ]
    if rows:
        session.execute(insert(_counts), rows)
    return len(folded)
