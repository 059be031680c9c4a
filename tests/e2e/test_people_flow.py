"""Issue 12 end to end on the embedded default: owners are emailed, open their link in a real
browser, type the codes their phones got, and the run verifies every number.

No Plivo credentials, so the run starts its own sandbox and receiver (which serves the code page).
A real SMTP server (aiosmtpd) receives the mail; headless Chromium plays each owner. The sandbox's
simulated people never text a code back here (a reply delay longer than the test), so every code
comes through the page: the voice calls' in the first wave, the SMS codes once `ask_person_after`
has passed without them reaching any inbox, in the second.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import read_csv, write_csv
from tests.smtp_server import Received, SmtpServer, smtp_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LANDLINES = ["+442071838750", "+442071838751", "+442071838752"]  # phonenumbers: FIXED_LINE
MOBILES = ["+447400123456", "+447400123457", "+447400123458"]  # phonenumbers: MOBILE
OWNERS = ["ana@example.com", "bo@example.com", "cy@example.com"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


class SandboxUrl(logging.Handler):
    """Learns the in-process sandbox's address from the run's own log line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.url: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"local sandbox at (http://[0-9.]+:[0-9]+)", record.getMessage())
        if found:
            self.url = found.group(1)


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    for name in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "PLIVO_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLERID_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    monkeypatch.setenv("CALLERID_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("CALLERID_SANDBOX_CALLS", "hold")  # a call's code is only heard
    with smtp_server() as server:
        monkeypatch.setenv("CALLERID_SMTP_URL", server.url)
        yield server


def _csv(tmp_path: Path) -> Path:
    """No channel column: `--channel auto` (the default) calls the landlines, texts the mobiles."""
    rows = []
    for i, owner in enumerate(OWNERS):
        rows.append({"phone_number": LANDLINES[i], "alias": f"Desk {i}", "owner": owner})
        rows.append({"phone_number": MOBILES[i], "alias": f"Mobile {i}", "owner": owner})
    return write_csv(tmp_path / "people.csv", rows)


def _heard(sandbox_url: str, number: str, channels: dict[str, set[str]]) -> str:
    """What the phone got (the sandbox's record); notes how each number was reached."""
    got = httpx.get(f"{sandbox_url}/_sandbox/messages", params={"phone_number": number}, timeout=10)
    messages = got.json()["messages"]
    channels[number] = {m["channel"] for m in messages}
    return str(messages[-1]["otp"])


def _play_owner(page: Any, mail: Received, sandbox_url: str, channels: dict[str, set[str]]) -> int:
    """Open the mail's link, type every code asked for, wait to see them verified."""
    from playwright.sync_api import expect

    link = re.search(r"(http://\S+/codes/\S+)", mail.body)
    assert link, mail.body
    page.goto(link.group(1))
    fields = page.locator("li:has(input[type=text])")
    numbers = [fields.nth(i).get_attribute("data-number") for i in range(fields.count())]
    for number in numbers:
        assert number is not None
        code = _heard(sandbox_url, number, channels)
        page.locator(f'li[data-number="{number}"] input').fill(code)
    page.get_by_role("button", name="Send the codes").click()
    for number in numbers:
        status = page.locator(f'li[data-number="{number}"] .status')
        expect(status).to_have_text("Verified", timeout=90_000)  # the page refreshes itself
    return len(numbers)


@pytest.mark.parametrize(
    "silent_phones",
    [
        # The usual day: each mobile's SMS reaches the inbox and verifies by itself; the landlines'
        # calls are only heard, so one wave asks each owner for their landline's code.
        False,
        # Nobody's SMS reaches an inbox either: after ask_person_after a second wave asks for them.
        True,
    ],
    ids=["calls-typed", "everything-typed"],
)
def test_owners_type_their_codes_on_the_page_and_every_number_verifies(
    prefect_api: str, smtp: SmtpServer, tmp_path: Path, silent_phones: bool
) -> None:
    from playwright.sync_api import sync_playwright

    from flows.bulk_verify import bulk_verify

    sandbox = SandboxUrl()
    logging.getLogger("prefect").addHandler(sandbox)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = asyncio.run(
                bulk_verify(
                    str(_csv(tmp_path)),
                    shared_rate_limit=False,
                    poll_interval_s=0.2,
                    # Silent: no phone texts its code back within the test; the page is the way.
                    sandbox_reply_delay_s=3600 if silent_phones else 0.5,
                    ask_person_after_s=5 if silent_phones else 120,
                )
            )
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    typed, played = 0, 0
    channels: dict[str, set[str]] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone's screen
            page.set_default_timeout(60_000)
            try:
                deadline = time.monotonic() + 300
                while thread.is_alive() and time.monotonic() < deadline:
                    mails = list(smtp.handler.received)
                    for mail in mails[played:]:
                        assert sandbox.url, "the run never said where its sandbox is"
                        typed += _play_owner(page, mail, sandbox.url, channels)
                        for mobile in MOBILES:  # how the others were reached, while it is up
                            _heard(sandbox.url, mobile, channels)
                    played = len(mails)
                    assert played or time.monotonic() < deadline - 180, "no owner was emailed"
                    time.sleep(0.3)
            except BaseException:
                page.screenshot(path=str(tmp_path / "code-page-failure.png"), full_page=True)
                raise
            finally:
                browser.close()
        thread.join(60)
    finally:
        logging.getLogger("prefect").removeHandler(sandbox)
    assert not thread.is_alive(), "the run did not finish"
    assert "error" not in box, box
    result = box["result"]
    rows = read_csv(Path(result["results_csv"]))
    assert sorted(r["status"] for r in rows) == ["verified"] * 6
    waves = 2 if silent_phones else 1
    assert typed == 3 * waves

    # One email per owner per wave: the calls' wave (then the SMS wave).
    assert result["people"]["waves"] == waves and result["people"]["emails_failed"] == 0
    for owner in OWNERS:
        mails = smtp.handler.to(owner)
        assert len(mails) == waves, [m.body for m in mails]
        assert "Plivo has sent a verification code to this 1 number" in mails[0].body
        assert "(voice call)" in mails[0].body
        if silent_phones:
            assert "(SMS)" in mails[1].body

    summary = (Path(result["results_csv"]).parent / "summary.md").read_text()
    assert f"3 owners emailed in {waves} waves" in summary

    # The landlines went by call, the mobiles by SMS.
    assert channels == {n: {"call"} for n in LANDLINES} | {n: {"sms"} for n in MOBILES}


def test_a_notification_that_cannot_be_sent_is_logged_not_raised(
    prefect_api: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tasks.people import notify

    with caplog.at_level(logging.WARNING, logger="tasks.people"):
        sent = asyncio.run(notify("custom-webhook/nobody-made-this", "body", "subject"))
    assert sent is False
    assert "could not notify through custom-webhook/nobody-made-this" in caplog.text


def test_mail_that_cannot_be_sent_is_in_the_reports_and_the_run_goes_on(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.bulk_verify import bulk_verify

    for name in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "PLIVO_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLERID_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    monkeypatch.setenv("CALLERID_OUTPUT_DIR", str(tmp_path / "out"))
    with smtp_server() as gone:  # a mail server that is no longer there
        monkeypatch.setenv("CALLERID_SMTP_URL", gone.url)
    rows = [{"phone_number": MOBILES[0], "owner": OWNERS[0]}]
    csv_path = write_csv(tmp_path / "one.csv", rows)
    result = asyncio.run(
        bulk_verify(
            str(csv_path),
            shared_rate_limit=False,
            poll_interval_s=0.2,
            sandbox_reply_delay_s=3,  # the SMS arrives; the owner is asked before it does
            ask_person_after_s=0,
        )
    )
    assert result["counts"]["verified"] == 1
    people = result["people"]
    assert (people["waves"], people["emails_sent"], people["emails_failed"]) == (1, 0, 1)
    why = people["not_emailed"][MOBILES[0]]
    assert why.startswith(f"email to {OWNERS[0]} not sent: cannot connect")
    summary = (Path(result["results_csv"]).parent / "summary.md").read_text()
    assert f"| {MOBILES[0]} | {why} |" in summary
    notifications = read_csv(Path(people["notifications_csv"]))
    assert [(n["owner"], n["status"]) for n in notifications] == [(OWNERS[0], "failed")]
    # And in the UI: the owners' artifact says the same (the summary artifact came before it).
    artifact = asyncio.run(_latest_artifact("bulk-verify-owners"))
    assert f"| {MOBILES[0]} | {why} |" in artifact
    assert "0 owners emailed in 1 waves" in artifact


async def _latest_artifact(key: str) -> str:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, key
    newest = max(found, key=lambda a: a.created or 0)  # type: ignore[arg-type,return-value]
    return str(newest.data)
