"""`--smtp-block`: the owners' mail goes through a prefect-email `EmailServerCredentials` block
saved on the Prefect server, read from inside a running flow's event loop as the run reads it,
to a real SMTP server (aiosmtpd) in the test. A block that is not there is a recorded reason on
every message, never a failed run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from callerid.people import Mail, SmtpMailer
from tasks.people import mail_settings, smtp_settings_or_why
from tests.smtp_server import SmtpServer, smtp_server

pytestmark = pytest.mark.slow


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def test_owners_mail_goes_through_an_email_server_credentials_block(
    prefect_api: str, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_email import EmailServerCredentials

    monkeypatch.setenv("CALLERID_SMTP_FROM", "desk@example.com")
    monkeypatch.setenv("CALLERID_SMTP_URL", "smtp://not-this-one.invalid:25")  # the block wins
    EmailServerCredentials(smtp_server="127.0.0.1", smtp_port=smtp.port, smtp_type="INSECURE").save(
        "owners-mail", overwrite=True
    )

    async def in_a_flows_loop() -> tuple[object, str | None]:
        return await smtp_settings_or_why("owners-mail")

    settings, why = asyncio.run(in_a_flows_loop())
    assert why is None and settings is not None
    assert (settings.host, settings.port, settings.starttls, settings.ssl) == (  # type: ignore[attr-defined]
        "127.0.0.1",
        smtp.port,
        False,
        False,
    )
    report = SmtpMailer(settings).send([Mail("ana@example.com", "codes", "body\n")])  # type: ignore[arg-type]
    assert report.failed == {}
    (got,) = smtp.handler.wait_for(1)
    assert got.to == ["ana@example.com"] and got.message["From"] == "desk@example.com"
    assert mail_settings(None) is not None  # without a block: CALLERID_SMTP_URL


def test_a_block_that_is_not_there_is_a_reason_not_an_error(prefect_api: str) -> None:
    settings, why = asyncio.run(smtp_settings_or_why("nobody-saved-this"))
    assert settings is None
    assert why is not None and why.startswith("SMTP settings unusable: ")
