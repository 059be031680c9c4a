"""The code page served by the standalone `callerid inbox serve` process (a real subprocess), over
HTTP, on a real ledger (SQLite file and PostgreSQL): a link signed with the same key as the run's
(CALLERID_LINK_SECRET, or the key the ledger keeps) opens the page; the code typed lands in the
inbox table and the matcher hands it on like any other source's; a forged link gets 403 and
nothing is stored.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from callerid.inbox import WebhookServer, match_new_messages
from callerid.ledger import InboxMessage, Ledger, open_ledger
from callerid.people import Link, sign
from callerid.people.keys import link_key
from tests.ledger_support import ACCOUNT
from tests.people_support import inbox_count, waiting_numbers

ANA = "ana@example.com"
N1, N2, OUTSIDE = "+14155550123", "+14155550124", "+14155550125"
SECRET = "a-secret-the-run-and-the-server-share"


@dataclass
class Served:
    base: str
    ledger: Ledger
    environ: dict[str, str]
    process: subprocess.Popen[str]

    def key(self) -> bytes:
        with self.ledger.unit_of_work() as uow:
            return link_key(uow.session, self.environ)  # the run's way to the key


def _serve(db_url: str, **extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "CALLERID_"))}
    env.update(
        PYTHONUNBUFFERED="1",
        CALLERID_DATABASE_URL=db_url,
        PLIVO_AUTH_ID=ACCOUNT,  # a real account's server: the page files codes under it
        PLIVO_AUTH_TOKEN="a-plivo-auth-token-for-the-webhook",
        **extra,
    )
    command = [sys.executable, "-c", "from callerid.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "inbox", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    said = [process.stdout.readline() for _ in range(4)]
    page = re.search(r"owners' code page: (http://127\.0\.0\.1:\d+)/codes/<link>", said[3])
    assert page, said
    return process, page.group(1)


@pytest.fixture(params=["secret", "ledger-key"])
def served(request: pytest.FixtureRequest, db_url: str) -> Iterator[Served]:
    environ = {"CALLERID_LINK_SECRET": SECRET} if request.param == "secret" else {}
    with open_ledger(db_url) as ledger:
        waiting_numbers(ledger, {N1: ANA, N2: ANA, OUTSIDE: "bo@example.com"}, now=_now())
        process, base = _serve(db_url, **environ)
        try:
            yield Served(base, ledger, environ, process)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)  # a loaded 2-core box: the server stops, slowly


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _link(key: bytes, numbers: tuple[str, ...], minutes: int = 15) -> str:
    return sign(key, Link(ACCOUNT, ANA, numbers, _now() + timedelta(minutes=minutes)))


def _typed(ledger: Ledger) -> list[InboxMessage]:
    with ledger.unit_of_work() as uow:
        return list(uow.session.execute(select(InboxMessage).order_by(InboxMessage.id)).scalars())


def test_inbox_serve_takes_codes_on_the_page_and_the_matcher_uses_them(served: Served) -> None:
    token = _link(served.key(), (N1, N2))
    with httpx.Client(base_url=served.base, timeout=30) as owner:
        page = owner.get(f"/codes/{token}")
        assert page.status_code == 200, page.text
        assert "+1 415-555-0123" in page.text and "+1 415-555-0124" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        sent = owner.post(
            f"/codes/{token}",
            data={"csrf": csrf.group(1), "code_14155550123": "482913", "code_14155550124": ""},
        )
        assert sent.status_code == 303, sent.text
        (message,) = _typed(served.ledger)
        assert (message.account, message.source, message.from_number, message.status) == (
            ACCOUNT,
            "page",
            N1,
            "new",
        )
        # Matched like a webhook's or a file's: the code goes to N1's live verification.
        with served.ledger.unit_of_work() as uow:
            (matched,) = match_new_messages(uow, ACCOUNT, _now())
            uow.commit()
        assert (matched.e164, matched.verification_uuid, matched.message_id) == (
            N1,
            f"uuid-{N1}",
            message.id,
        )
        assert matched.code == "482913"
        after = owner.get(f"/codes/{token}").text
        assert "482913" not in after  # the page never shows a code back

        # A link for a number it does not name, and a forged link: 403, nothing stored.
        outside = {"csrf": csrf.group(1), "code_14155550125": "123456"}
        assert owner.post(f"/codes/{token}", data=outside).status_code == 403
        forged = sign(
            b"not the key of this ledger at all",
            Link(ACCOUNT, ANA, (N1, N2), _now() + timedelta(minutes=15)),
        )
        assert owner.get(f"/codes/{forged}").status_code == 403
        data = {"csrf": csrf.group(1), "code_14155550124": "111111"}
        refused = owner.post(f"/codes/{forged}", data=data)
        assert refused.status_code == 403 and "cannot be used" in refused.text
        assert inbox_count(served.ledger) == 1


def test_the_key_is_the_servers_and_the_runs_alike(served: Served) -> None:
    """With CALLERID_LINK_SECRET set, a link signed with the ledger's own key is forged; without
    it, the key the server generated at start is the one the ledger gives the run."""
    with served.ledger.unit_of_work() as uow:
        stored = link_key(uow.session, {})  # the ledger's key (the server made it at start)
        uow.commit()
    token = _link(stored, (N1,))
    status = httpx.get(f"{served.base}/codes/{token}", timeout=30).status_code
    assert status == (403 if served.environ else 200)
    assert inbox_count(served.ledger) == 0


def test_the_rate_limit_is_one_count_for_every_process_serving_the_page(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five tries through `inbox serve` and five through the run's own receiver (this process)
    fill the link's minute: the next, on either, is 429 and stores nothing."""
    for name, value in served.environ.items():
        monkeypatch.setenv(name, value)
    token = _link(served.key(), (N1,))
    run_side = WebhookServer(served.ledger, ACCOUNT, {ACCOUNT: "t" * 16}, "t" * 16)
    with (
        run_side,
        httpx.Client(base_url=served.base, timeout=30) as one,
        httpx.Client(base_url=run_side.code_page_base, timeout=30) as other,
    ):
        forms = []
        for browser in (one, other):
            csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get(f"/codes/{token}").text)
            assert csrf
            forms.append({"csrf": csrf.group(1), "code_14155550123": ""})
        for _ in range(5):
            for browser, form in zip((one, other), forms, strict=True):
                assert browser.post(f"/codes/{token}", data=form).status_code == 303
        for browser, form in zip((one, other), forms, strict=True):
            typed = {**form, "code_14155550123": "482913"}
            assert browser.post(f"/codes/{token}", data=typed).status_code == 429
    assert inbox_count(served.ledger) == 0


def test_a_link_secret_too_short_is_exit_2_before_serving(sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "CALLERID_"))}
    env.update(CALLERID_DATABASE_URL=sqlite_url, CALLERID_LINK_SECRET="short")
    command = [sys.executable, "-c", "from callerid.cli import main; main()"]
    done = subprocess.run(
        [*command, "inbox", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "CALLERID_LINK_SECRET must be at least 16 characters" in done.stdout + done.stderr
    assert "short" not in (done.stdout + done.stderr).replace("shorter", "")
