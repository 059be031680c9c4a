"""Inbox values: codes and texts stay out of reprs; errors pickle (Prefect stores them)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from callerid.inbox import (
    AssignmentError,
    Credentials,
    ImapError,
    InboundMessage,
    InvalidCodeError,
    MatchedCode,
    MessageSource,
)
from callerid.inbox.imap import ImapConfig

NAIVE = datetime(2026, 1, 1, 12, 0)


def test_reprs_hide_codes_texts_and_secrets() -> None:
    message = InboundMessage(MessageSource.WEBHOOK, "m1", "1", None, "code 4821", NAIVE)
    assert "4821" not in repr(message)
    assert message.received_at.tzinfo is UTC  # naive input is taken as UTC
    assert "4821" not in repr(MatchedCode("+14155550123", "uuid", "4821", 1))
    creds = Credentials({"MAX": "tok-secret"}, "main-secret")
    assert "secret" not in repr(creds) and "MAX" in repr(creds)
    assert "pw-secret" not in repr(ImapConfig("h", "u", "pw-secret"))


@pytest.mark.parametrize(
    "error", [InvalidCodeError("a code is 4 to 8 digits"), AssignmentError("x"), ImapError("y")]
)
def test_errors_pickle(error: Exception) -> None:
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error) and str(restored) == str(error)


def test_message_limits() -> None:
    with pytest.raises(ValueError, match="external_id"):
        InboundMessage(MessageSource.FILE, "", "1", None, "x", NAIVE)
    with pytest.raises(ValueError, match="text longer"):
        InboundMessage(MessageSource.FILE, "id", "1", None, "x" * 1601, NAIVE)
    with pytest.raises(ValueError, match="phone number longer"):
        InboundMessage(MessageSource.FILE, "id", "1" * 65, None, "x", NAIVE)
    with pytest.raises(ValueError, match="main account"):
        Credentials({}, "")
