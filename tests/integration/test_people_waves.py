"""Waves against a real ledger and a real SMTP server: one message per owner per wave, the
reminder when a third of the window is left, nothing after it, failures recorded per number."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from callerid.clock import ManualClock
from callerid.ledger import Ledger, NumberRecord, NumberStatus, open_ledger
from callerid.ledger.models import Notification
from callerid.people import PeopleLane, SmtpMailer, parse_smtp_url, verify
from callerid.people.keys import link_key
from callerid.people.records import failed_notices, notice_counts
from callerid.people.waves import RunMembers, needing_person
from tests.ledger_support import ACCOUNT, RUN, T0, drive
from tests.people_support import waiting_numbers
from tests.smtp_server import SmtpServer, smtp_server

ANA, BO, CY = "ana@example.com", "bo@example.com", "cy@example.com"
OWNERS = {
    "+14155550123": ANA,
    "+14155550124": ANA,
    "+14155550125": BO,
    "+14155550126": CY,
}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    with open_ledger(sqlite_url) as opened:
        waiting_numbers(opened, OWNERS, channel="call")
        yield opened


def _lane(ledger: Ledger, clock: ManualClock, smtp: SmtpServer | None) -> PeopleLane:
    mailer = SmtpMailer(parse_smtp_url(smtp.url), sleep=lambda s: None) if smtp else None
    return PeopleLane(
        ledger, ACCOUNT, RUN, lambda: list(OWNERS), clock, "https://codes.example.com", mailer
    )


def _rows(ledger: Ledger) -> list[Notification]:
    with ledger.unit_of_work() as uow:
        return list(uow.session.execute(select(Notification).order_by(Notification.id)).scalars())


def test_one_message_per_owner_per_wave_then_a_reminder_then_silence(
    ledger: Ledger, smtp: SmtpServer
) -> None:
    clock = ManualClock(T0 + timedelta(seconds=5))
    lane = _lane(ledger, clock, smtp)
    (wave,) = lane.tick()
    assert (wave.wave, wave.numbers, wave.owners, wave.emailed) == (1, 4, 3, 3)
    got = smtp.handler.wait_for(3)
    assert sorted(r.to[0] for r in got) == [ANA, BO, CY]
    ana = smtp.handler.to(ANA)[0]
    assert "these 2 numbers (voice call)" in ana.body and "before 12:15 UTC" in ana.body
    token = ana.body.split("/codes/")[1].split()[0]
    with ledger.unit_of_work() as uow:
        link = verify(link_key(uow.session), token, clock.now())
    assert link.owner == ANA and link.numbers == ("+14155550123", "+14155550124")
    assert lane.tick() == []  # nobody is told twice about the same initiation

    drive(ledger, "+14155550125", NumberStatus.COMPLETING, NumberStatus.VERIFIED)  # Bo typed it
    clock.advance(9 * 60)  # 9:05 into the 15-minute window: not yet a third left
    assert lane.tick() == []
    clock.advance(60)  # 10:05: a third left -> reminders for what is still missing
    (reminder,) = lane.tick()
    assert reminder.reminder and (reminder.owners, reminder.numbers) == (2, 3)
    assert len(smtp.handler.to(ANA)) == 2 and len(smtp.handler.to(BO)) == 1
    assert smtp.handler.to(ANA)[1].body.startswith("Reminder")
    assert lane.tick() == []  # one reminder
    clock.advance(5 * 60)  # the window is over: nothing more
    assert lane.tick() == []
    with ledger.unit_of_work() as uow:
        counts = notice_counts(uow.session, ACCOUNT, RUN)
    assert (counts.waves, counts.sent, counts.reminders, counts.failed) == (1, 3, 2, 0)


def test_a_new_initiation_is_a_new_wave(ledger: Ledger, smtp: SmtpServer) -> None:
    clock = ManualClock(T0 + timedelta(seconds=5))
    lane = _lane(ledger, clock, smtp)
    lane.tick()
    later = T0 + timedelta(minutes=16)
    drive(ledger, "+14155550126", NumberStatus.EXPIRED, NumberStatus.QUEUED, now=later)
    drive(ledger, "+14155550126", NumberStatus.INITIATING, NumberStatus.INITIATED, now=later)
    clock.advance(16 * 60)
    (wave,) = lane.tick()
    assert (wave.wave, wave.numbers, wave.owners) == (2, 1, 1)
    assert len(smtp.handler.to(CY)) == 2


def test_a_run_names_only_its_own_numbers_by_its_membership_rows(
    ledger: Ledger, smtp: SmtpServer
) -> None:
    """The lane finds its run's numbers through the ledger's membership rows (a round costs the
    same at 100,000 numbers), not through the list it was given: a number of another run of the
    account, as live and as owned, is not named; a list without a run id still works."""
    waiting_numbers(ledger, {"+14155550127": ANA}, run_id="another-run")
    clock = ManualClock(T0 + timedelta(seconds=5))
    lane = _lane(ledger, clock, smtp)
    lane.run_numbers = lambda: pytest.fail("a run's lane read the list of its numbers")
    (wave,) = lane.tick()
    assert (wave.numbers, wave.owners) == (4, 3)
    assert "+1 415-555-0127" not in smtp.handler.to(ANA)[0].body

    with ledger.unit_of_work() as uow:
        named = needing_person(uow.session, ACCOUNT, ["+14155550127"], clock.now(), timedelta(0))
        members = needing_person(
            uow.session, ACCOUNT, RunMembers("another-run"), clock.now(), timedelta(0)
        )
    assert [w.e164 for w in named] == [w.e164 for w in members] == ["+14155550127"]


def test_sms_numbers_wait_for_the_ask_after_delay(ledger: Ledger, smtp: SmtpServer) -> None:
    other = {"+14155550127": ANA}
    waiting_numbers(ledger, other, channel="sms")
    clock = ManualClock(T0 + timedelta(seconds=5))
    lane = _lane(ledger, clock, smtp)
    lane.run_numbers = lambda: [*OWNERS, *other]
    (first,) = lane.tick()
    assert first.numbers == 4 and first.channels == {"call": 4}
    clock.advance(120)
    (second,) = lane.tick()
    assert (second.wave, second.numbers, second.channels) == (2, 1, {"sms": 1})
    assert "(SMS)" in smtp.handler.to(ANA)[-1].body


def test_a_row_that_asks_for_a_person_is_in_the_first_wave_even_by_sms(
    ledger: Ledger, smtp: SmtpServer
) -> None:
    asked, later = {"+14155550127": BO}, {"+14155550128": BO}
    waiting_numbers(ledger, {**asked, **later}, channel="sms")
    clock = ManualClock(T0 + timedelta(seconds=5))
    lane = _lane(ledger, clock, smtp)
    lane.run_numbers = lambda: [*OWNERS, *asked, *later]
    lane.at_once = frozenset(asked)
    (first,) = lane.tick()
    assert first.channels == {"call": 4, "sms": 1}
    assert "+1 415-555-0127" in smtp.handler.to(BO)[0].body
    assert "+1 415-555-0128" not in smtp.handler.to(BO)[0].body


def test_a_message_that_cannot_be_sent_is_recorded_on_its_numbers(
    ledger: Ledger, smtp: SmtpServer
) -> None:
    smtp.handler.refuse = {BO}
    lane = _lane(ledger, ManualClock(T0 + timedelta(seconds=5)), smtp)
    (wave,) = lane.tick()
    assert (wave.emailed, wave.failed) == (2, 1)
    with ledger.unit_of_work() as uow:
        failed = failed_notices(uow.session, ACCOUNT, RUN)
    assert failed == {"+14155550125": "email to bo@example.com not sent: recipient refused (550)"}
    assert [r.status for r in _rows(ledger)].count("failed") == 1


def test_without_smtp_every_message_is_recorded_as_not_sent(ledger: Ledger) -> None:
    lane = _lane(ledger, ManualClock(T0 + timedelta(seconds=5)), None)
    (wave,) = lane.tick()
    assert (wave.emailed, wave.failed) == (0, 3)
    with ledger.unit_of_work() as uow:
        failed = failed_notices(uow.session, ACCOUNT, RUN)
    assert set(failed) == set(OWNERS) and all("no SMTP" in why for why in failed.values())


def test_a_run_started_again_reminds_once_from_what_the_ledger_kept(
    ledger: Ledger, smtp: SmtpServer
) -> None:
    """The first run told the owners and died; the rerun (a new run id, a new lane) sends the
    reminders that fall due, once, with links that still work; a third lane sends nothing."""
    clock = ManualClock(T0 + timedelta(seconds=5))
    (wave,) = _lane(ledger, clock, smtp).tick()
    assert wave.owners == 3
    first = smtp.handler.to(ANA)[0].body.split("/codes/")[1].split()[0]
    clock.advance(10 * 60)  # a third of the window left
    with ledger.unit_of_work() as uow:  # the rerun registers the file again: its membership rows
        rows = [NumberRecord(e164, alias="Front desk", channel="call") for e164 in OWNERS]
        uow.numbers.upsert_many(ACCOUNT, rows, "run-2", clock.now())
        uow.commit()
    rerun = PeopleLane(
        ledger,
        ACCOUNT,
        "run-2",
        lambda: list(OWNERS),
        clock,
        "https://codes.example.com",
        SmtpMailer(parse_smtp_url(smtp.url), sleep=lambda s: None),
    )
    (reminder,) = rerun.tick()  # not a second wave: these initiations were told already
    assert reminder.reminder and (reminder.owners, reminder.numbers) == (3, 4)
    again = smtp.handler.to(ANA)[1].body
    assert again.startswith("Reminder") and again.split("/codes/")[1].split()[0] == first
    assert _lane(ledger, clock, smtp).tick() == []  # once, whichever run reminded
    assert rerun.tick() == []
    with ledger.unit_of_work() as uow:
        counts = notice_counts(uow.session, ACCOUNT, "run-2")
    assert (counts.waves, counts.reminders) == (0, 3)
