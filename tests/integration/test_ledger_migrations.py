"""Opening and migrating the ledger on file SQLite and PostgreSQL."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from callerid.ledger import Ledger, Number, open_ledger
from callerid.ledger.migrate import downgrade, head_revision, upgrade
from callerid.ledger.models import Base
from tests.ledger_workers import open_fresh_ledgers

TABLES = {
    "runs",
    "numbers",
    "events",
    "inbox_messages",
    "run_numbers",
    "run_counts",
    "rate_grants",
    "notifications",
    "notified_numbers",
    "ledger_secrets",
}


def _tables(ledger: Ledger) -> set[str]:
    return set(sa.inspect(ledger.engine).get_table_names()) - {"alembic_version"}


def test_an_empty_database_goes_to_head_and_back(db_url: str) -> None:
    with open_ledger(db_url, migrate=False) as ledger:
        assert ledger.revision() is None and _tables(ledger) == set()
        assert upgrade(ledger.engine) is True
        assert ledger.revision() == head_revision() and _tables(ledger) == TABLES
        downgrade(ledger.engine, "base")
        assert ledger.revision() is None and _tables(ledger) == set()
        assert ledger.upgrade() is True  # and up again, from nothing
        assert ledger.upgrade() is False  # already there: nothing to do
        assert _tables(ledger) == TABLES


def test_the_migrations_build_exactly_the_models(db_url: str) -> None:
    with open_ledger(db_url) as ledger, ledger.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_a_fresh_sqlite_file_is_created_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "out" / "nested" / "ledger.sqlite3"
    with open_ledger(f"sqlite:///{path}") as ledger:
        assert path.exists() and ledger.revision() == head_revision()
        with ledger.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_the_default_ledger_is_the_sqlite_file_under_the_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLERID_DATABASE_URL", raising=False)
    monkeypatch.setenv("CALLERID_OUTPUT_DIR", str(tmp_path / "out"))
    with open_ledger() as ledger:
        assert ledger.dialect == "sqlite" and _tables(ledger) == TABLES
    assert (tmp_path / "out" / "ledger.sqlite3").exists()


def test_callerid_database_url_selects_postgresql(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")  # the driver is ours to pick
    monkeypatch.setenv("CALLERID_DATABASE_URL", plain)
    with open_ledger() as ledger:
        assert ledger.dialect == "postgresql" and _tables(ledger) == TABLES


def test_an_in_memory_ledger_is_one_database_for_every_session() -> None:
    with open_ledger("sqlite://") as ledger, ledger.unit_of_work() as uow:
        assert uow.numbers.counts_by_status()["queued"] == 0


def test_the_url_of_a_ledger_never_shows_a_password() -> None:
    ledger = open_ledger("postgresql://user:s3cret@127.0.0.1:1/x", migrate=False)
    try:
        assert "s3cret" not in ledger.url and "s3cret" not in repr(ledger)
        assert ledger.engine.url.drivername == "postgresql+psycopg"
    finally:
        ledger.close()


def test_ledgers_opening_a_fresh_database_together_migrate_it_once(db_url: str) -> None:
    """The flow and the webhook receiver may start at the same moment on an empty database.

    Threads with one engine each: the migration lock is per connection, as between processes.
    """
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            barrier.wait(10)
            with open_ledger(db_url) as ledger, ledger.unit_of_work() as uow:
                assert uow.numbers.by_status("nobody") == []
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with open_ledger(db_url, migrate=False) as ledger:
        assert ledger.revision() == head_revision()
        with ledger.engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar()
            assert rows == 1
        assert Number.__tablename__ in _tables(ledger)


def _number_indexes(ledger: Ledger) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(ledger.engine).get_indexes("numbers")}


def test_each_revision_steps_down_and_up_again(db_url: str) -> None:
    with open_ledger(db_url) as ledger:
        assert "ix_numbers_claim" in _number_indexes(ledger)
        downgrade(ledger.engine, "0001")
        assert ledger.revision() == "0001"
        assert "ix_numbers_account_status" in _number_indexes(ledger)
        assert "ix_numbers_claim" not in _number_indexes(ledger)
        assert upgrade(ledger.engine) is True and ledger.revision() == head_revision()
        assert "ix_numbers_account_status" not in _number_indexes(ledger)


def test_a_fresh_sqlite_file_another_opener_is_writing_is_waited_for(tmp_path: Path) -> None:
    """A second opener meets the first one's write transaction on a file still in rollback mode
    (as while the first switches it to WAL): SQLite fails the second one's switch to WAL at once,
    without its busy handler. Opening must wait for the writer instead."""
    path = tmp_path / "ledger.sqlite3"
    holding, release = threading.Event(), threading.Event()

    def write_a_while() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("CREATE TABLE other_opener (x INTEGER)")
            holding.set()
            release.wait(30)
            connection.execute("COMMIT")
        finally:
            connection.close()

    writer = threading.Thread(target=write_a_while)
    writer.start()
    try:
        assert holding.wait(30)
        threading.Timer(0.5, release.set).start()
        with open_ledger(f"sqlite:///{path}") as ledger:
            assert ledger.revision() == head_revision()
    finally:
        release.set()
        writer.join(30)


def _open_together(urls: list[str], openers: int) -> list[str]:
    """Threads with one engine each open every url of `urls` together; the errors they met."""
    errors: list[str] = []
    for url in urls:
        barrier = threading.Barrier(openers)

        def open_one(url: str = url, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait(30)
                with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
                    uow.numbers.by_status("nobody")
            except Exception as exc:  # reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=open_one) for _ in range(openers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    return errors


def test_many_openers_of_fresh_sqlite_files_never_meet_a_locked_database(tmp_path: Path) -> None:
    """Hammer the start of a flow and a receiver on a new SQLite ledger: six threads open each of
    20 fresh files at once. Two openers switching a fresh file to WAL together deadlock inside
    SQLite, which fails one at once with "database is locked" whatever the busy timeout."""
    urls = [f"sqlite:///{tmp_path / f'fresh-{i}.sqlite3'}" for i in range(20)]
    assert _open_together(urls, 6) == []
    for url in urls:
        with open_ledger(url, migrate=False) as ledger, ledger.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1


def test_processes_opening_fresh_sqlite_files_together_never_meet_a_locked_database(
    tmp_path: Path,
) -> None:
    """The same between processes (one spawn each, then 6 fresh files opened together)."""
    context = multiprocessing.get_context("spawn")
    workers_count = 4
    urls = [f"sqlite:///{tmp_path / f'fresh-{i}.sqlite3'}" for i in range(6)]
    gate = context.Barrier(workers_count)
    outs = [tmp_path / f"worker-{i}.json" for i in range(workers_count)]
    workers = [
        context.Process(target=open_fresh_ledgers, args=(urls, gate, str(out))) for out in outs
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join(300)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
    assert [w.exitcode for w in workers] == [0] * workers_count
    assert [json.loads(out.read_text()) for out in outs] == [[]] * workers_count
    for url in urls:
        with open_ledger(url, migrate=False) as ledger:
            assert ledger.revision() == head_revision()
