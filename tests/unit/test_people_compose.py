"""SMTP settings from a URL, the wave's message, owner addresses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callerid.people import waves
from callerid.people.mail import SmtpConfigError, parse_smtp_url
from callerid.people.owners import valid_owner

NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


def test_a_smtp_url_with_starttls_and_credentials() -> None:
    s = parse_smtp_url("smtp://ops%40example.com:p%40ss@mail.example.com:587?starttls=true")
    assert (s.host, s.port, s.username, s.starttls, s.ssl) == (
        "mail.example.com",
        587,
        "ops@example.com",
        True,
        False,
    )
    assert s.password is not None and s.password.get_secret_value() == "p@ss"
    assert "p@ss" not in repr(s) and "p@ss" not in str(s)


def test_smtps_defaults_to_465_and_from_is_read() -> None:
    s = parse_smtp_url("smtps://mail.example.com?from=ops@example.com")
    assert (s.port, s.ssl, s.sender, s.username, s.password) == (
        465,
        True,
        "ops@example.com",
        None,
        None,
    )


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "smtp://h:notaport"])
def test_a_bad_smtp_url_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(SmtpConfigError) as caught:
        parse_smtp_url(url.replace("h:", "user:secret@h:"))
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Ana.Lopez@Example.COM ", "Ana.Lopez@example.com"),
        ("ops+calls@branch.example.co.uk", "ops+calls@branch.example.co.uk"),
        ("ana", None),
        ("ana@localhost", None),
        ("Ana <ana@example.com>", None),
        ("ana@exa mple.com", None),
        ("", None),
        ("a" * 250 + "@example.com", None),
    ],
)
def test_owner_addresses(raw: str, expected: str | None) -> None:
    assert valid_owner(raw) == expected


def _waiting(e164: str, owner: str, channel: str, minutes: int = 0) -> waves.Waiting:
    start = NOW + timedelta(minutes=minutes)
    return waves.Waiting(e164, "Front desk", owner, channel, start, start + timedelta(minutes=15))


def test_one_message_per_owner_with_the_issue_sentence() -> None:
    waiting = [
        _waiting("+14155550124", "bo@example.com", "sms"),
        _waiting("+14155550123", "ana@example.com", "call"),
        _waiting("+442071838750", "ana@example.com", "sms", minutes=1),
    ]
    messages = waves.plan(waiting, "MA1", b"k" * 32)
    assert [m.owner for m in messages] == ["ana@example.com", "bo@example.com"]
    ana = messages[0]
    assert [w.e164 for w in ana.numbers] == ["+14155550123", "+442071838750"]
    assert ana.deadline == NOW + timedelta(minutes=15)
    assert ana.link_expires_at == NOW + timedelta(minutes=16)
    assert ana.remind_at == NOW + timedelta(minutes=10)
    mail = waves.compose(ana, "https://codes.example.com/")
    assert mail.to == "ana@example.com"
    first = mail.body.splitlines()[0]
    assert first == (
        "Plivo has sent a verification code to these 2 numbers (SMS / voice call). Enter each "
        f"code here before 16:15 UTC: https://codes.example.com/codes/{ana.token}"
    )
    assert "+1 415-555-0123  Front desk  (voice call)" in mail.body
    assert "+44 20 7183 8750" in mail.body


def test_a_wave_waits_to_gather_numbers_still_being_initiated_but_not_forever() -> None:
    after, gather = timedelta(minutes=2), timedelta(seconds=20)
    call = [_waiting("+14155550123", "ana@example.com", "call")]
    assert waves.should_send(call, NOW, after, gather, more_coming=False)
    assert not waves.should_send(call, NOW + timedelta(seconds=5), after, gather, more_coming=True)
    assert waves.should_send(call, NOW + timedelta(seconds=20), after, gather, more_coming=True)
    sms = [_waiting("+14155550124", "ana@example.com", "sms")]
    assert not waves.should_send(sms, NOW + timedelta(seconds=30), after, gather, more_coming=True)
    assert not waves.should_send([], NOW, after, gather, more_coming=False)


def test_rows_that_ask_for_a_person() -> None:
    from types import SimpleNamespace

    from callerid.people.owners import asked_rows

    rows = [
        SimpleNamespace(e164="+14155550123", extra={"Ask_Person": "yes"}),
        SimpleNamespace(e164="+14155550124", extra={"ask_person": "no"}),
        SimpleNamespace(e164="+14155550125", extra={}),
        SimpleNamespace(e164="+14155550126", extra={"ask": "1"}),
    ]
    assert asked_rows(rows) == {"+14155550123", "+14155550126"}


@pytest.mark.parametrize(
    ("public_url", "base"),
    [
        ("https://codes.example.com", "https://codes.example.com"),
        ("https://codes.example.com/", "https://codes.example.com"),
        ("https://t.example.com/plivo/sms", "https://t.example.com"),  # inbox serve's URL
        ("https://proxy.example.com/callerid/", "https://proxy.example.com/callerid"),
        ("https://proxy.example.com/callerid/codes", "https://proxy.example.com/callerid"),
    ],
)
def test_public_url_is_the_base_of_every_link(public_url: str, base: str) -> None:
    from callerid.people.page import code_page_base

    message = waves.plan([_waiting("+14155550123", "a@example.com", "call")], "MA1", b"k" * 32)
    mail = waves.compose(message[0], code_page_base(public_url))
    assert f"{base}/codes/{message[0].token}" in mail.body
