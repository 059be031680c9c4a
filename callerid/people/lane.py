"""The people lane: beside the verification loop, it sends the waves and the reminders.

It runs as its own asyncio task and does its ledger reads and SMTP work in a worker thread, so
mail never holds up an initiation or a completion: a slow or dead mail server only slows this
lane. Each round (`tick`) looks at the ledger, sends at most one wave (one message per owner over
one SMTP connection) and the reminders that are due, and records every message, sent or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from callerid.clock import Clock
from callerid.people import records, waves
from callerid.people.keys import link_key
from callerid.people.mail import Mail, SendReport

if TYPE_CHECKING:
    from callerid.ledger import Ledger

log = logging.getLogger(__name__)

ASK_PERSON_AFTER = timedelta(minutes=2)
GATHER = timedelta(seconds=20)
NO_SMTP = "no SMTP server configured (CALLERID_SMTP_URL or --smtp-block)"


class Mailer(Protocol):
    def send(self, mails: Sequence[Mail]) -> SendReport: ...


@dataclass(frozen=True)
class WaveReport:
    """What one wave (or one round of reminders) did: counts only, no codes, no links."""

    wave: int
    numbers: int
    owners: int
    emailed: int
    failed: int
    reminder: bool = False
    channels: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        kind = "reminders" if self.reminder else f"wave {self.wave}"
        failed = f", {self.failed} could not be emailed" if self.failed else ""
        return (
            f"{kind}: {self.numbers} numbers wait for a person "
            f"({self.emailed} of {self.owners} owners emailed{failed})"
        )


class PeopleLane:
    def __init__(
        self,
        ledger: Ledger,
        account: str,
        run_id: str | None,
        run_numbers: Callable[[], Sequence[str]],
        clock: Clock,
        base_url: str,
        mailer: Mailer | None,
        *,
        ask_after: timedelta = ASK_PERSON_AFTER,
        gather: timedelta = GATHER,
        at_once: frozenset[str] = frozenset(),
    ) -> None:
        self.ledger = ledger
        self.account = account
        self.run_id = run_id
        self.run_numbers = run_numbers
        self.clock = clock
        self.base_url = base_url
        self.mailer = mailer
        self.ask_after = ask_after
        self.gather = gather
        self.at_once = at_once
        self.waves_sent = 0
        self.why_not = NO_SMTP  # recorded on every message when there is no mailer
        self._key: bytes | None = None

    def _send(self, mails: Sequence[Mail]) -> dict[str, str]:
        """Recipient -> error for what could not be sent (everything, without a mailer)."""
        if not mails:
            return {}
        if self.mailer is None:
            return {m.to: self.why_not for m in mails}
        try:
            report = self.mailer.send(mails)
        except Exception as exc:  # a mailer bug must not end the lane, nor lose the record
            log.exception("sending a wave's mail failed")
            return {m.to: f"mailer error: {type(exc).__name__}" for m in mails}
        return dict(report.failed)

    def tick(self) -> list[WaveReport]:
        """One round: a wave if one is due, then the due reminders. Blocking: run in a thread."""
        now = self.clock.now()
        # A run's numbers through its membership rows (O(1) per round in the run's size); the
        # list only when there is no run to look them up by.
        numbers: Sequence[str] | waves.RunMembers = (
            waves.RunMembers(self.run_id) if self.run_id is not None else list(self.run_numbers())
        )
        reports: list[WaveReport] = []
        with self.ledger.unit_of_work() as uow:
            session = uow.session
            if self._key is None:
                self._key = link_key(session)
                uow.commit()
            waiting = waves.needing_person(
                session, self.account, numbers, now, self.ask_after, self.at_once
            )
            more = bool(waiting) and waves.initiations_pending(session, self.account, numbers)
        if waves.should_send(waiting, now, self.ask_after, self.gather, more_coming=more):
            reports.append(self._wave(waiting))
        reminders = self._reminders(numbers)
        if reminders is not None:
            reports.append(reminders)
        return reports

    def _wave(self, waiting: Sequence[waves.Waiting]) -> WaveReport:
        assert self._key is not None
        messages = waves.plan(waiting, self.account, self._key)
        failed = self._send([waves.compose(m, self.base_url) for m in messages])
        now = self.clock.now()
        with self.ledger.unit_of_work() as uow:
            wave = records.next_wave(uow.session, self.account, self.run_id)
            for message in messages:
                records.record_message(
                    uow.session,
                    self.account,
                    self.run_id,
                    wave,
                    message,
                    kind=records.WAVE,
                    error=failed.get(message.owner),
                    now=now,
                )
            uow.commit()
        self.waves_sent += 1
        for owner, why in failed.items():
            log.warning("wave %d: the email to %s was not sent: %s", wave, owner, why)
        return WaveReport(
            wave=wave,
            numbers=len(waiting),
            owners=len(messages),
            emailed=len(messages) - len(failed),
            failed=len(failed),
            channels=dict(Counter(w.channel for w in waiting)),
        )

    def _reminders(self, numbers: Sequence[str] | waves.RunMembers) -> WaveReport | None:
        """Reminders read everything from the ledger (what was sent, what is still missing), so
        a run started again after a crash sends each one once, and none after the window."""
        assert self._key is not None
        now = self.clock.now()
        with self.ledger.unit_of_work() as uow:
            members = numbers if isinstance(numbers, waves.RunMembers) else set(numbers)
            due = records.due_reminders(uow.session, self.account, members, now, self._key)
        if not due:
            return None
        mails = [
            waves.compose(d.message, self.base_url, reminder=True, numbers=d.missing) for d in due
        ]
        failed = self._send(mails)
        with self.ledger.unit_of_work() as uow:
            for item in due:
                records.record_message(
                    uow.session,
                    self.account,
                    self.run_id,
                    item.wave,
                    item.message,
                    kind=records.REMINDER,
                    error=failed.get(item.message.owner),
                    now=now,
                    numbers=item.missing,
                )
            uow.commit()
        return WaveReport(
            wave=max(d.wave for d in due),
            numbers=sum(len(d.missing) for d in due),
            owners=len(due),
            emailed=len(due) - len(failed),
            failed=len(failed),
            reminder=True,
        )

    async def run(
        self,
        stop: asyncio.Event,
        *,
        interval_s: float = 1.0,
        on_wave: Callable[[WaveReport], Awaitable[None]] | None = None,
    ) -> None:
        """Tick until `stop` is set. A failing round is logged and the next one tries again."""
        while not stop.is_set():
            try:
                reports = await asyncio.to_thread(self.tick)
            except Exception:
                log.exception("the people lane's round failed; trying again")
                reports = []
            for report in reports:
                log.info("%s", report.line())
                if on_wave is not None:
                    try:
                        await on_wave(report)
                    except Exception:
                        log.exception("reporting a wave failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
