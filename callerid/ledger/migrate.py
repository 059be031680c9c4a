"""Alembic, run from code: the ledger's schema is migrated when it is opened, and by
`callerid db upgrade`. No alembic.ini: the script folder is found next to this module.

Several processes may open the same database at once (a flow and the webhook receiver), so an
upgrade runs under a lock: a transaction-scoped advisory lock on PostgreSQL, `BEGIN IMMEDIATE`
(the database's write lock) on SQLite. The second process waits, then finds the head in place
(the revision is read again under the lock). SQLite files are switched to WAL as they are
opened (`ledger.py`), retrying the switch that two openers of a fresh file would deadlock on.
Within one process a plain lock serialises them as well: Alembic runs its env.py through a
module-global context, so two threads must never run a command at the same time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key: any constant that other tools on the same database will not use.
_PG_LOCK_KEY = 0x43414C4C4552  # "CALLER"
_ALEMBIC = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its revisions
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _revision_of(connection)


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    with _ALEMBIC, engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        yield connection
        connection.commit()


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Bring the schema to `revision`; returns whether anything had to be done."""
    if revision == "head" and current_revision(engine) == head_revision():
        return False  # the common case, without taking the lock
    with _locked(engine) as connection:
        # Checked again under the lock: another opener may have migrated while this one waited.
        if revision == "head" and _revision_of(connection) == head_revision():
            return False
        command.upgrade(alembic_config(connection), revision)
    return True


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to `revision` (`base` drops every table of the ledger)."""
    with _locked(engine) as connection:
        command.downgrade(alembic_config(connection), revision)
