"""Owners: the email address of the person holding each number's phone, kept per number.

Ingest validates the `owner` cell of each row (`valid_owner` is the rule it can share); this
module writes what the accepted rows say into the ledger. The write is a plain UPDATE of the
`owner` column that leaves the row's version alone: an owner is not a state change, and a run
that loaded the row a moment ago must still be able to move it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.orm import Session

from callerid.ledger.models import Number

MAX_OWNER_CHARS = 254  # RFC 5321's path limit
# Deliberately plain: one @, a dotted domain, no spaces or angle brackets. Mail servers judge the
# rest; this only keeps typos and pasted names out of the ledger.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_numbers = cast(Table, Number.__table__)


def valid_owner(text: str) -> str | None:
    """The address, trimmed and with its domain lower-cased, or None when it is not one."""
    address = text.strip()
    if not address or len(address) > MAX_OWNER_CHARS or not _ADDRESS.match(address):
        return None
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


OWNER_COLUMNS = ("owner", "contact", "email", "notify")


def _owner_of(row: Any) -> str | None:
    owner = getattr(row, "owner", None)
    if owner:
        return str(owner)
    # An ingest that does not know the column yet carries it through as an extra cell.
    extra = {k.strip().lower(): v for k, v in (getattr(row, "extra", None) or {}).items()}
    for name in OWNER_COLUMNS:
        if extra.get(name):
            return valid_owner(str(extra[name]))
    return None


def owners_of_rows(rows: Iterable[Any]) -> dict[str, str]:
    """E.164 -> owner for accepted rows that name one (first row of a number wins)."""
    found: dict[str, str] = {}
    for row in rows:
        owner = _owner_of(row)
        if owner and row.e164 not in found:
            found[row.e164] = owner
    return found


def assign_owners(session: Session, account: str, owners: Mapping[str, str]) -> int:
    """Set each number's owner (numbers not in `owners` keep theirs); returns rows named."""
    if not owners:
        return 0
    statement = (
        update(_numbers)
        .where(_numbers.c.account == account, _numbers.c.e164 == bindparam("key"))
        .values(owner=bindparam("owner"))
    )
    params = [{"key": e164, "owner": owner} for e164, owner in owners.items()]
    session.connection().execute(statement, params)
    return len(params)


ASK_COLUMNS = ("ask_person", "ask")
_YES = {"1", "y", "yes", "true", "x"}


def asked_rows(rows: Iterable[Any]) -> frozenset[str]:
    """Numbers whose row asks for a person at once (an `ask_person` cell: yes / true / 1 / x)."""
    found: set[str] = set()
    for row in rows:
        extra = {k.strip().lower(): v for k, v in (getattr(row, "extra", None) or {}).items()}
        if any(str(extra.get(name, "")).strip().lower() in _YES for name in ASK_COLUMNS):
            found.add(row.e164)
    return frozenset(found)
