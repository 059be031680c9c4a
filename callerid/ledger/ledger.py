"""Opening the ledger: engine, sessions, migrations.

`open_ledger()` is the one way in. SQLite (the default: a file under the output folder) is
created and migrated on open, in WAL mode with a busy timeout so that a flow and the webhook
receiver can share the file. PostgreSQL is migrated on open too unless `migrate=False` (servers
that run `callerid db upgrade` as a deploy step).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from callerid.ledger import migrate
from callerid.ledger.uow import UnitOfWork
from callerid.settings import Settings, load_settings

log = logging.getLogger(__name__)
_JITTER = random.Random()  # its own generator: the global one is shared state

# A session whose commit changes nothing a reader can see (a read that folded the run's count
# rows) says so in its `info`: `Ledger.commits` then does not count it, so the loop's shared
# look is not thrown away by its own read.
UNCOUNTED_COMMIT = "callerid.uncounted_commit"

# How long a SQLite writer waits for another one before "database is locked" (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def resolve_url(url: str | None = None, settings: Settings | None = None) -> URL:
    """Argument > CALLERID_DATABASE_URL > the SQLite file under the output folder.

    `postgresql://` means psycopg 3 (the driver we ship), not SQLAlchemy's psycopg2 default.
    """
    raw = url or (settings or load_settings()).resolved_database_url()
    parsed = make_url(raw)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (once: the mode is stored in the file), waiting out other openers.

    Two connections switching a fresh file at the same moment both read it, then both need the
    exclusive lock: SQLite sees a deadlock and fails one at once with "database is locked",
    without calling the busy handler. So retry here, for as long as the busy timeout would wait.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause * _JITTER.uniform(0.5, 1.5))
        pause = min(pause * 2, 0.25)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers and the writer do not block each other (the receiver writes, a flow reads).
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def make_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"prepare_threshold": None},
            hide_parameters=True,  # an error's text must not quote a code it was storing
        )
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if in_memory:
        # One shared connection, or every new connection would see its own empty database.
        engine = create_engine(
            url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            hide_parameters=True,
        )
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True
        )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Ledger:
    """An open ledger: an engine and its sessions. Close it (or use `with`) to release the pool."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Rows handed out by a unit of work stay readable after its commit (callers copy them
        # into plain values after committing the claim).
        self.sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        # Bumped by every commit made through this ledger: a cached read older than a commit of
        # this process is stale (the loop's shared look at the ledger, `pipeline.ledger_reads`).
        self.commits = 0
        event.listen(self.sessions, "after_commit", self._committed)

    def _committed(self, session: Session) -> None:
        if session.info.get(UNCOUNTED_COMMIT):
            return
        self.commits += 1  # a lost increment under a thread race only costs one extra read

    @property
    def url(self) -> str:
        """The database URL with any password masked (safe to log)."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)

    def upgrade(self) -> bool:
        """Migrate to the head revision; returns whether anything had to be done."""
        return migrate.upgrade(self.engine)

    def revision(self) -> str | None:
        return migrate.current_revision(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"


def open_ledger(
    url: str | None = None, settings: Settings | None = None, *, migrate: bool = True
) -> Ledger:
    """Open (and by default migrate) the ledger at `url`, else at the settings' database URL."""
    ledger = Ledger(make_engine(resolve_url(url, settings)))
    if migrate:
        try:
            if ledger.upgrade():
                log.info("ledger at %s migrated to %s", ledger.url, ledger.revision())
        except BaseException:
            ledger.close()
            raise
    return ledger
