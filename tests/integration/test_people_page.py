"""The code page on a real server over HTTP, with a real ledger: typing codes, and every refusal.

Each refusal is checked to store nothing: the inbox table has exactly as many rows after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from callerid.inbox import store
from callerid.ledger import InboxMessage, Ledger, NumberStatus, open_ledger
from callerid.people import Link, sign
from callerid.people.page import COOKIE
from tests.ledger_support import ACCOUNT, T0, drive
from tests.people_support import Page, browser, code_page, csrf_of, inbox_count, waiting_numbers

ANA, BO = "ana@example.com", "bo@example.com"
N1, N2, N3 = "+14155550123", "+14155550124", "+14155550125"


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    with open_ledger(db_url) as opened:
        waiting_numbers(opened, {N1: ANA, N2: ANA, N3: BO})
        yield opened


@pytest.fixture
def page(ledger: Ledger) -> Iterator[Page]:
    with code_page(ledger) as started:
        yield started


def _open(page: Page, token: str) -> tuple[str, object]:
    client = browser(page)
    got = client.get(f"/codes/{token}")
    assert got.status_code == 200, got.text
    return csrf_of(got.text), client


def _typed(ledger: Ledger) -> list[InboxMessage]:
    with ledger.unit_of_work() as uow:
        return list(uow.session.execute(select(InboxMessage).order_by(InboxMessage.id)).scalars())


def test_the_owner_types_codes_and_sees_each_outcome(page: Page, ledger: Ledger) -> None:
    token = page.link([N1, N2])
    client = browser(page)
    first = client.get(f"/codes/{token}")
    assert first.status_code == 200
    html = first.text
    assert "+1 415-555-0123" in html and "+1 415-555-0124" in html and "Front desk" in html
    assert "+1 415-555-0125" not in html  # Bo's number: not on Ana's link
    assert "<script" not in html.lower() and 'name="viewport"' in html
    assert html.count('type="text"') == 2
    assert "samesite=strict" in first.headers["set-cookie"].lower()
    sent = client.post(
        f"/codes/{token}",
        data={"csrf": csrf_of(html), "code_14155550123": "123456", "code_14155550124": ""},
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"/codes/{token}"
    (message,) = _typed(ledger)
    assert (message.source, message.from_number, message.status) == ("page", N1, "new")
    assert message.account == ACCOUNT
    after = client.get(f"/codes/{token}").text
    assert "Checking the code" in after and 'http-equiv="refresh"' in after
    assert "123456" not in after  # the page never shows a code back

    # The pipeline learns the outcomes: N1's code verified it; N2 stays waiting.
    drive(ledger, N1, NumberStatus.COMPLETING, NumberStatus.VERIFIED)
    with ledger.unit_of_work() as uow:
        store.mark_used(uow.session, message.id, N1)
        uow.commit()
    done = client.get(f"/codes/{token}").text
    assert 'class="status verified"' in done and "Waiting for the code" in done
    assert done.count('type="text"') == 1


def test_a_wrong_code_says_so_and_counts_down(page: Page, ledger: Ledger) -> None:
    token = page.link([N1])
    csrf, client = _open(page, token)
    assert client.post(f"/codes/{token}", data={"csrf": csrf, "code_14155550123": "111111"})
    (message,) = _typed(ledger)
    with ledger.unit_of_work() as uow:
        store.mark_rejected(uow.session, message.id, "wrong code", N1)
        uow.commit()
    html = client.get(f"/codes/{token}").text
    assert "Wrong code" in html and "2 tries left" in html and 'type="text"' in html


def test_an_expired_number_says_a_new_code_is_coming(page: Page, ledger: Ledger) -> None:
    token = page.link([N1])
    drive(ledger, N1, NumberStatus.EXPIRED, NumberStatus.QUEUED)
    html = browser(page).get(f"/codes/{token}").text
    assert "a new code is on its way" in html and 'type="text"' not in html


# -- refusals: nothing is stored for any of them --------------------------------------------------


def _refused(page: Page, ledger: Ledger, token: str, data: dict[str, str], status: int) -> str:
    _, client = _open(page, page.link([N1, N2]))
    before = inbox_count(ledger)
    got = client.post(f"/codes/{token}", data=data)
    assert got.status_code == status, got.text
    assert inbox_count(ledger) == before
    return got.text


def test_a_forged_link_is_refused(page: Page, ledger: Ledger) -> None:
    forged = sign(
        b"not the ledger's key at all", Link(ACCOUNT, ANA, (N1,), T0 + timedelta(hours=1))
    )
    assert browser(page).get(f"/codes/{forged}").status_code == 403
    _refused(page, ledger, forged, {"code_14155550123": "123456"}, 403)


def test_an_altered_link_is_refused(page: Page, ledger: Ledger) -> None:
    token = page.link([N1])
    body, mac = token.split(".")
    altered = f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{mac}"
    assert browser(page).get(f"/codes/{altered}").status_code == 403
    _refused(page, ledger, altered, {"code_14155550123": "123456"}, 403)


def test_an_expired_link_is_refused(page: Page, ledger: Ledger) -> None:
    token = page.link([N1], minutes=15)
    csrf, client = _open(page, token)
    page.clock.advance(15 * 60)
    assert client.get(f"/codes/{token}").status_code == 403
    before = inbox_count(ledger)
    got = client.post(f"/codes/{token}", data={"csrf": csrf, "code_14155550123": "123456"})
    assert got.status_code == 403 and "expired" in got.text
    assert inbox_count(ledger) == before


def test_a_code_for_a_number_outside_the_link_is_refused(page: Page, ledger: Ledger) -> None:
    token = page.link([N1, N2])
    csrf, client = _open(page, token)
    data = {"csrf": csrf, "code_14155550123": "123456", "code_14155550125": "654321"}
    before = inbox_count(ledger)
    assert client.post(f"/codes/{token}", data=data).status_code == 403
    assert inbox_count(ledger) == before  # not even the code for the number it names


def test_a_post_without_the_csrf_token_is_refused(page: Page, ledger: Ledger) -> None:
    token = page.link([N1])
    _, client = _open(page, token)
    before = inbox_count(ledger)
    assert client.post(f"/codes/{token}", data={"code_14155550123": "1234"}).status_code == 403
    other_csrf, _ = _open(page, page.link([N2]))  # a token of another link
    data = {"csrf": other_csrf, "code_14155550123": "1234"}
    assert client.post(f"/codes/{token}", data=data).status_code == 403
    client.cookies.clear()  # the right token, but not from this browser's page
    csrf, _ = _open(page, token)
    assert client.post(f"/codes/{token}", data={**data, "csrf": csrf}).status_code == 403
    assert inbox_count(ledger) == before


def test_a_fourth_wrong_code_is_refused(page: Page, ledger: Ledger) -> None:
    token = page.link([N1])
    csrf, client = _open(page, token)
    for attempt in range(3):
        data = {"csrf": csrf, "code_14155550123": f"11111{attempt}"}
        assert client.post(f"/codes/{token}", data=data).status_code == 303
        last = _typed(ledger)[-1]
        with ledger.unit_of_work() as uow:
            store.mark_rejected(uow.session, last.id, "wrong code", N1)
            uow.commit()
    html = client.get(f"/codes/{token}").text
    assert "Too many wrong codes" in html and 'type="text"' not in html
    before = inbox_count(ledger)
    got = client.post(f"/codes/{token}", data={"csrf": csrf, "code_14155550123": "999999"})
    assert got.status_code == 403 and inbox_count(ledger) == before


def test_the_rate_limit_per_link(page: Page, ledger: Ledger) -> None:
    token = page.link([N1])
    csrf, client = _open(page, token)
    empty = {"csrf": csrf, "code_14155550123": ""}  # a submit with nothing typed still counts
    for _ in range(10):
        assert client.post(f"/codes/{token}", data=empty).status_code == 303
    before = inbox_count(ledger)
    got = client.post(f"/codes/{token}", data={"csrf": csrf, "code_14155550123": "123456"})
    assert got.status_code == 429 and inbox_count(ledger) == before
    page.clock.advance(59)  # still inside the minute of the first tries
    assert client.post(f"/codes/{token}", data=empty).status_code == 429
    page.clock.advance(2)  # the first ten are a minute old now
    assert client.post(f"/codes/{token}", data=empty).status_code == 303
    other = page.link([N2])  # another link is not held back
    csrf2, client2 = _open(page, other)
    assert (
        client2.post(
            f"/codes/{other}", data={"csrf": csrf2, "code_14155550124": "4321"}
        ).status_code
        == 303
    )


def test_a_malformed_code_is_refused(page: Page, ledger: Ledger) -> None:
    token = page.link([N1])
    csrf, client = _open(page, token)
    before = inbox_count(ledger)
    got = client.post(f"/codes/{token}", data={"csrf": csrf, "code_14155550123": "12ab"})
    assert got.status_code == 400 and inbox_count(ledger) == before
    assert client.cookies.get(COOKIE)
