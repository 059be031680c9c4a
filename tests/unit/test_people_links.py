"""Signed links and CSRF tokens: what they grant, and every way they are refused."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from callerid.people import links
from callerid.people.links import Link, LinkRefusedError

KEY = b"k" * 32
NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
LINK = Link(
    "MAACCOUNT", "ana@example.com", ("+14155550123", "+14155550124"), NOW + timedelta(minutes=15)
)


def test_a_signed_link_verifies_to_what_was_signed() -> None:
    token = links.sign(KEY, LINK)
    got = links.verify(KEY, token, NOW)
    assert got == LINK
    assert got.names("+14155550123") and not got.names("+14155550999")
    assert "/" not in token and "+" not in token and "=" not in token  # a path segment as is


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: "x" + t,  # payload changed
        lambda t: t.split(".")[0],  # signature dropped
        lambda t: t + ".x",  # extra part
        lambda t: "",  # nothing
        lambda t: "%%%.%%%",  # not base64
    ],
)
def test_an_altered_or_malformed_link_is_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LinkRefusedError):
        links.verify(KEY, mangle(links.sign(KEY, LINK)), NOW)


def test_a_link_signed_with_another_key_is_refused() -> None:
    forged = links.sign(b"another key, not the ledger's", LINK)
    with pytest.raises(LinkRefusedError, match="signature"):
        links.verify(KEY, forged, NOW)


def test_a_link_naming_other_numbers_is_a_different_link() -> None:
    other = Link(LINK.account, LINK.owner, ("+14155550999",), LINK.expires_at)
    body_of_other = links.sign(KEY, other).split(".")[0]
    spliced = body_of_other + "." + links.sign(KEY, LINK).split(".")[1]
    with pytest.raises(LinkRefusedError):
        links.verify(KEY, spliced, NOW)


def test_a_link_expires_at_the_end_of_its_latest_window() -> None:
    token = links.sign(KEY, LINK)
    assert links.verify(KEY, token, LINK.expires_at - timedelta(seconds=1))
    with pytest.raises(LinkRefusedError, match="expired"):
        links.verify(KEY, token, LINK.expires_at)


def test_the_expiry_is_never_rounded_earlier_than_asked() -> None:
    odd = Link(LINK.account, LINK.owner, LINK.numbers, NOW + timedelta(microseconds=400_001))
    assert links.verify(KEY, links.sign(KEY, odd), NOW).expires_at >= odd.expires_at


def test_refusals_survive_a_pickle_round_trip() -> None:
    error = pickle.loads(pickle.dumps(LinkRefusedError("link expired")))
    assert error.reason == "link expired"


def test_csrf_tokens_are_bound_to_the_link_and_the_nonce() -> None:
    token, other = links.sign(KEY, LINK), links.sign(KEY, Link("A", "b@c.de", ("+1",), NOW))
    nonce = links.new_nonce()
    csrf = links.csrf_token(KEY, token, nonce)
    assert links.csrf_ok(KEY, token, nonce, csrf)
    assert not links.csrf_ok(KEY, other, nonce, csrf)
    assert not links.csrf_ok(KEY, token, links.new_nonce(), csrf)
    assert not links.csrf_ok(KEY, token, nonce, None)
    assert not links.csrf_ok(KEY, token, None, csrf)
    assert not links.csrf_ok(b"x" * 32, token, nonce, csrf)
