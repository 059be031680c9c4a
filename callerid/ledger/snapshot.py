"""One snapshot for a group of reads: what a matcher pass needs so that no commit lands between
its reads (issue 14, "The matcher race").

* PostgreSQL: the transaction runs at REPEATABLE READ, so every statement sees the database as of
  the first one. A write that meets a row another transaction changed since fails with a
  serialization error (`is_serialization_failure`): the caller retries on its next round.
* SQLite: Python's driver runs SELECTs outside any transaction (each sees the latest commit), so
  the snapshot is an explicit `BEGIN`. A pass that will write takes the write lock at once
  (`BEGIN IMMEDIATE`): a deferred read transaction that later writes fails at once with
  "database is locked" when another connection committed meanwhile (WAL's snapshot rule), while
  an immediate one waits its turn (busy timeout) and then reads and writes one consistent state.
  Readers are never blocked (WAL).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_SERIALIZATION_FAILURES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


def begin_snapshot(session: Session, *, write: bool) -> bool:
    """Start `session`'s transaction as one snapshot for every read that follows (until commit or
    rollback). Returns False when the session had already begun a transaction that cannot be
    turned into one (PostgreSQL: the isolation level is fixed by then): reads then see each
    commit as it lands, and the caller's own rules must cope (the matcher's do)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        if session.in_transaction():
            log.debug("snapshot asked for inside a running transaction; reads are read-committed")
            return False
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return True
    if dialect == "sqlite":
        connection = session.connection()
        driver = connection.connection.dbapi_connection
        if driver is not None and not getattr(driver, "in_transaction", True):
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
        return True
    return False


def is_serialization_failure(error: BaseException) -> bool:
    """A PostgreSQL snapshot transaction lost to a concurrent one (retry on the next round)."""
    if not isinstance(error, DBAPIError):
        return False
    return getattr(error.orig, "sqlstate", None) in _SERIALIZATION_FAILURES
