"""A database error never quotes the values of its statement: they are codes and message texts
(an INSERT of the inbox, a matcher's UPDATE), and an error's text goes to terminals, crash logs
and Prefect's task logs. Real SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import StatementError

from callerid.ledger import open_ledger


def test_a_failed_statement_does_not_quote_its_values(db_url: str) -> None:
    with (
        open_ledger(db_url) as ledger,
        ledger.unit_of_work() as uow,
        pytest.raises(StatementError) as raised,
    ):
        uow.session.execute(
            sa.text("UPDATE no_such_table SET code = :code WHERE text = :text"),
            {"code": "482193", "text": "Your code is 482193"},
        )
    said = str(raised.value)
    assert "no_such_table" in said  # the statement is still named
    assert "482193" not in said
