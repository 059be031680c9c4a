"""The link key: CALLERID_LINK_SECRET, else one generated once and kept in the ledger."""

from __future__ import annotations

import pytest

from callerid.ledger import open_ledger
from callerid.people.keys import LinkSecretError, link_key


def _key(url: str, environ: dict[str, str]) -> bytes:
    with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
        key = link_key(uow.session, environ)
        uow.commit()
        return key


def test_a_key_is_generated_once_and_kept(db_url: str) -> None:
    first = _key(db_url, {})
    assert len(first) >= 32
    assert _key(db_url, {}) == first  # another process opening the same ledger agrees


def test_the_environment_wins(db_url: str) -> None:
    assert _key(db_url, {"CALLERID_LINK_SECRET": "s" * 20}) == b"s" * 20
    with pytest.raises(LinkSecretError, match="at least 16"):
        _key(db_url, {"CALLERID_LINK_SECRET": "short"})
