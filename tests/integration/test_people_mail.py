"""The mailer against a real SMTP server: one connection per wave, retries, refusals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callerid.people.mail import Mail, SmtpMailer, parse_smtp_url
from tests.smtp_server import SmtpServer, smtp_server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def _mails(n: int) -> list[Mail]:
    return [Mail(f"owner{i}@example.com", f"subject {i}", f"body {i}\n") for i in range(n)]


def test_a_wave_goes_over_one_connection(smtp: SmtpServer) -> None:
    report = SmtpMailer(parse_smtp_url(smtp.url)).send(_mails(5))
    assert report.sent == [f"owner{i}@example.com" for i in range(5)]
    assert report.failed == {} and report.connections == 1 == smtp.handler.connections
    got = smtp.handler.wait_for(5)
    assert [r.to for r in got] == [[f"owner{i}@example.com"] for i in range(5)]
    assert got[0].message["From"] == "callerid@example.com"
    assert got[0].body == "body 0\n"


def test_a_refused_connection_is_retried_with_backoff(smtp: SmtpServer) -> None:
    smtp.handler.fail_connections = 2
    waits: list[float] = []
    report = SmtpMailer(parse_smtp_url(smtp.url), attempts=3, sleep=waits.append).send(_mails(2))
    assert report.sent == ["owner0@example.com", "owner1@example.com"] and not report.failed
    assert waits == [1.0, 2.0]


def test_a_refused_recipient_fails_alone_and_at_once(smtp: SmtpServer) -> None:
    smtp.handler.refuse = {"owner1@example.com"}
    waits: list[float] = []
    report = SmtpMailer(parse_smtp_url(smtp.url), sleep=waits.append).send(_mails(3))
    assert report.sent == ["owner0@example.com", "owner2@example.com"]
    assert report.failed == {"owner1@example.com": "recipient refused (550)"}
    assert waits == []


def test_no_server_fails_every_message_after_the_retries_without_the_password() -> None:
    with smtp_server() as gone:
        url = gone.url.replace("127.0.0.1", "user:hunter2@127.0.0.1")
    waits: list[float] = []
    report = SmtpMailer(parse_smtp_url(url), attempts=2, sleep=waits.append).send(_mails(2))
    assert report.sent == [] and set(report.failed) == {"owner0@example.com", "owner1@example.com"}
    assert all("hunter2" not in why for why in report.failed.values())
    assert waits == [1.0]
