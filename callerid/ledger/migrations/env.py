"""Alembic environment for the ledger. Run programmatically by `callerid.ledger.migrate`, which
passes an open connection (already holding the migration lock) in `config.attributes`."""

from __future__ import annotations

from alembic import context

from callerid.ledger.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the ledger always passes one
    raise RuntimeError("run the ledger's migrations through callerid.ledger.migrate")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
