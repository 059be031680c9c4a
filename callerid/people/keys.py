"""The link-signing key: `CALLERID_LINK_SECRET`, or one generated once and kept in the ledger.

Every process that signs or checks links (the run, `callerid inbox serve`) reads the same ledger,
so they agree on the key without anyone configuring it. Two processes generating it at the same
moment leave one row (insert-if-absent, then read back what is there).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callerid.ledger.models import LedgerSecret
from callerid.people.links import generate_key

ENV_NAME = "CALLERID_LINK_SECRET"
_NAME = "link"
MIN_SECRET_CHARS = 16


class LinkSecretError(ValueError):
    """CALLERID_LINK_SECRET is set but too short to sign anything with."""


def link_key(session: Session, environ: dict[str, str] | None = None) -> bytes:
    """The key, from the environment when set, else from the ledger (created on first use)."""
    configured = (os.environ if environ is None else environ).get(ENV_NAME, "").strip()
    if configured:
        if len(configured) < MIN_SECRET_CHARS:
            raise LinkSecretError(f"{ENV_NAME} must be at least {MIN_SECRET_CHARS} characters")
        return configured.encode()
    stored = session.execute(
        select(LedgerSecret.value).where(LedgerSecret.name == _NAME)
    ).scalar_one_or_none()
    if stored is None:
        values = {"name": _NAME, "value": generate_key(), "created_at": datetime.now(UTC)}
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(LedgerSecret).values(**values).on_conflict_do_nothing())
        stored = session.execute(
            select(LedgerSecret.value).where(LedgerSecret.name == _NAME)
        ).scalar_one()
    return stored.encode()
